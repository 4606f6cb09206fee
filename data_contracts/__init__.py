"""The trip record contract: one declared schema, validation with quarantine, and source adapters."""
