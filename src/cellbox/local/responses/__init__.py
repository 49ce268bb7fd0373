"""POST /v1/responses and the `cellbox-local` model that answers it.

create   a request (every documented field), read and checked
model    the model: the events that build one Response, its calls running the code in the container
items    the objects a Response is made of: calls, the message and its citations, usage, what include shows
stored   responses being made and kept: GET, DELETE, cancel, background runs, bounded storage
"""
