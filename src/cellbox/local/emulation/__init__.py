"""What makes the local server behave like a real cloud, for tests: add-ons the real server works without, each off
unless its option (or a `--profile`) turns it on. Middleware wraps the server's answers (gateway, faults); its
handlers and its model consult the rest (listing, quirks). Nothing here imports the server's parts, only the error
shape they share (errors.py).

    profiles  `--profile openai|oci`: each a set of option values
    gateway   OCI's gateway manners: its error shape, a wrong key as 404, opc-request-id, a required project
    quirks    `--model-quirks`: the model misbehaving the way an LLM may
    listing   `--listing-lag-ms`: file listings that lag behind the files
    faults    `--latency-ms` and `--error-rate`: injected latency and retryable 503s
"""
