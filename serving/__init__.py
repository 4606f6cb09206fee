"""The ETA HTTP service (BentoML) and the plain helpers behind its endpoints.

- `service`: the BentoML service (thin: wiring, I/O, model swaps); the only module here that serves HTTP.
- `schemas`, `errors`, `frames`, `intervals`, `windows`, `route`: request/response models and the pure maths
  the endpoints call (no BentoML imports).
- `model_source`: where the model comes from (MLflow registry, the Bento's model store, or memory) and the
  holder that swaps it atomically; `batching`: the micro-batcher; `guard`: auth, content type, body size.
- `packaging`: export the champion into the BentoML model store and build the Bento (build time only).

Nothing here imports dagster or evidently, and importing a module has no side effects.
"""
