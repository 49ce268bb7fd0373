"""cellbox's embedded local sandbox server: the Containers API under /v1, with real, isolated, stateful sandboxes.

Run it with `cellbox serve` (or `python -m cellbox.local`); in tests, `cellbox.local.testing.running_server`.

Modules, one concept each::

    app.py         the route table and handlers
    params.py      reading requests: JSON bodies, list parameters, ids from the URL
    records.py     records shaped like the cloud's
    options.py     the server's options, declared once (flags, wiring, tests)
    ids.py         the ids the server issues, and the check that a string is one
    errors.py      errors in the OpenAI shape (and OCI's)
    middleware.py  bearer-token auth, injected latency and faults, OCI's error shape and required project
    listing.py     file listings that lag behind the files (--listing-lag-ms)
    uploads.py     streaming multipart parsing into a temp file
    store.py       SQLite metadata and file bytes in the data dir (atomic renames)
    disk.py        the disk quota, kept at all times (by a filesystem per container, or measured), and a reserve
    diskimages.py  each container's /mnt/data as a filesystem of its own: a loop-mounted ext4 image
    safepath.py    paths under /mnt/data that cannot escape it (no symlink following); bounded scans, deep removals
    launcher.py    starts kernels in bubblewrap jails under a container's Limits; the isolation check
    kernel.py      one kernel per container: the server's side of it (runs, interrupts, output, caps)
    jail_kernel.py the kernel itself, run in the jail: an IPython shell taking code over a socket pair
    pool.py        warm kernels for fast creates
    containers.py  live containers: kernels, locks, expiry
    responses.py   POST /v1/responses requests (every documented field), read and checked
    response_items.py  the records of a Response: calls, the message and its citations, usage, what include shows
    model.py       the `cellbox-local` model: its calls, tool_choice and max_tool_calls, its --model-quirks
    stored.py      responses being made and kept: GET/DELETE/cancel, background runs, bounded storage
    server.py      wiring, uvicorn, the endpoint file; cli.py: `cellbox serve`

Behaviour a client can rely on (where the cloud's is unknown, this is what its users would expect). Sources:
shared/reference/cloud-behaviour.md ([Doc] documented, [Obs] reported); deviations from the cloud are marked
"Deviation".

- Profiles (`--profile`, a set of option values, options.PROFILES): `openai` stores uploads at
  `/mnt/data/<32 hex>-<basename>` ([Doc] OpenAI's upload example; the folders of a name with `/` are dropped,
  the record's `path` says where it landed); `oci` answers every error as `{"code", "message"}` with an
  `opc-request-id` header ([Obs]; codes by status: 400 InvalidParameter or MissingParameter, 401
  NotAuthenticated, 404 NotAuthorizedOrNotFound, 429 TooManyRequests, 500 InternalServerError...), a wrong
  token as 404 NotAuthorizedOrNotFound "Authorization failed or requested resource not found" ([Obs]), and any
  request without an `OpenAI-Project` header as 400 MissingParameter ([Doc] projects are required). Without a
  profile the server keeps the documented API semantics. `--listing-lag-ms` and `--model-quirks`: listing.py and
  model.py.
- Unknown request fields (JSON bodies of every endpoint, multipart form fields) answer 400 `unknown_parameter`
  naming the field: `Unknown parameter: 'foo'.`, param `foo` (nested: `expires_after.foo`), as OpenAI does
  [Obs]. Every documented field is known (responses.py says what the model does with each).

- For tests and benchmarks: `--latency-ms N` delays every response; `--error-rate R` answers that share of
  authenticated requests with a retryable 503 (code `injected_fault`, `Retry-After: 0`) before they do anything.
- Every response carries `x-request-id` (`req_...`), which the SDK attaches to its errors.
- Auth: every request needs `Authorization: Bearer <token>`; otherwise 401 with code `invalid_api_key` (wrong
  token) or null (none given). The endpoint file `{"base_url", "token", "pid"}` (mode 0600) exists while the
  server runs.
- Ids sort by creation time: `cntr_` + 48 hex, `cfile_` + 32 hex, `file-` + 22 characters. Lists are newest
  first by default; `after` works even for an id deleted since. A path id of any other shape is a 404 before
  anything touches the disk.
- Containers: `status` is `running` or `expired`; `memory_limit` defaults to `1g`; `expires_after` defaults to
  20 minutes after `last_active_at` (1 to 1440 minutes accepted); every operation on a container refreshes
  `last_active_at`, retrieving it included ([Doc] "any container operation, like retrieving the container, or
  adding or deleting files"), so a panel must poll the container list, which is not an operation on any
  container, never retrieve each one. An expired container can't come back: it is still listed and retrievable
  (status `expired`: retrieving is how a client learns it is gone), its files and kernel are gone, and any other
  use answers 400 "Container is expired." ([Obs]; code `container_expired`); deleting it works.
  `network_policy` is always `{"type": "disabled"}` (an allowlist is refused with 400), `skills` are refused
  with 400.
- Container files: multipart `file` upload (the part's filename is the path under /mnt/data; `sub/x.csv` lands
  at `/mnt/data/sub/x.csv`; `..`, absolute paths other than `/mnt/data/...`, NUL or control characters, and
  names over 255 bytes a component or 1024 in all are refused with 400, param `file`), or JSON/multipart
  `file_id` (copied, named after the file's last component). A file record is an immutable version: writing a
  path anew (upload, or code changing it) gives it a new id; unchanged files keep theirs. After each run the
  folder is scanned (off the event loop; folders deeper than 64 levels are not entered, paths over 1024 bytes
  are not listed, and a scan stops after 200,000 entries): new or changed files appear with source
  `assistant`, vanished ones disappear. Only regular files are listed or read: symlinks are never followed, and
  a file swapped for a FIFO or a device after the scan answers 404 rather than being opened. Content is
  `application/octet-stream`, streamed, with Content-Length;
  a single `Range: bytes=a-b` answers 206 (416 when unsatisfiable); HEAD reads nothing.
  Uploads over the limit (512 MiB by default) answer 413 code `file_too_large`.
- Files API: `POST /v1/files` (multipart `file` and a required `purpose`), list (limit up to 10000, `purpose`
  filter), retrieve, delete (`{"id", "object": "file", "deleted": true}`), content.
- Responses: `model` is required (any name is accepted and echoed back); the request needs a `code_interpreter` tool
  whose `container` is an id or `{"type": "auto", "file_ids", "memory_limit"}`. With `stream: true` the answer is
  server-sent events (response.created ... code_interpreter_call.interpreting ... output_text.delta ...
  output_text.annotation.added ... response.completed) that the SDK's `responses.stream()` assembles (`--streaming
  refused` answers 400 unsupported_parameter instead, as a gateway without streaming would, and the OCI profile
  does; `--streaming cut` ends every stream once the code is running, as a proxy closing long connections would).
  The code is the first fenced python block of the input (the last user message when the input is a list), else the
  whole text. Output: a `code_interpreter_call` (outputs only with `include: ["code_interpreter_call.outputs"]`
  [Obs]: one `logs` item with stdout, stderr, tracebacks and the last value, then `image` items as data URLs) and an
  assistant message with the logs and a `container_file_citation` per new or changed file. Call status: `completed`
  (also when the code raised: the traceback is in the logs), `incomplete` (interrupted after the server's
  --exec-timeout), `failed` (the kernel died, e.g. out of memory; it was restarted: variables lost, files kept). A
  client that disconnects interrupts its code, unless the response is in the background. A run that fails (its
  container deleted meanwhile) ends a stream with an `error` event and `response.failed` whose error code is
  `server_error` (the SDK knows a fixed list of codes). Every answer passes the official SDK's strict response
  validation.
- `tool_choice`: `"none"` gives a reply without any call; `"auto"`, `"required"`, `{"type":
  "code_interpreter"}` and `{"type": "allowed_tools"}` naming code_interpreter give the call; a choice of a tool
  not in `tools` is a 400. `max_tool_calls` bounds the calls of one response ([Doc] further attempts are
  ignored: 0 gives a reply without any call); `parallel_tool_calls` is echoed, and either value is honoured: the
  model's calls never run in parallel.
- Stored responses: `store` (default true) keeps a response for `GET /v1/responses/{id}` (`include` there can
  ask for outputs too) and `DELETE /v1/responses/{id}`; with `store: false` they answer 404. A response id
  (`resp_` + 48 hex) of another shape is a 404 before anything else. `background: true` (needs `store`) answers
  at once with status `queued`, then `in_progress`, polled with GET to `completed`; `POST
  /v1/responses/{id}/cancel` interrupts its code and answers once it stopped, status `cancelled` (a finished one
  is returned as it is); cancelling a response that is not in the background is 400 "Cannot cancel a
  synchronous response." ([Doc] only background responses can be cancelled). `GET ...?stream=true
  &starting_after=N` streams a background response's events again. Finished stored responses are kept in the
  server's database, across restarts, 30 days as the cloud keeps them ([Doc]); only a server whose disk runs
  short forgets the oldest half sooner; at most 100 background ones running, more answer 429.
  `GET /v1/responses/{id}/input_items` lists a stored response's input (`limit`, `order`, `after`).
- Not served (Deviation): `POST /v1/responses/compact` and `POST /v1/responses/input_tokens` (405: the path has
  the shape of a response's).
  tests/local/test_local_sdk_suite.py runs the openai SDK's own tests of these resources against the server and
  lists each one that fails on purpose, with why.
"""
