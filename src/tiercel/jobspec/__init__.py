"""The job request, and every source it is read from.

A job request is what a user submits, whatever the interface: a command (an argv list, or a line
for ``/bin/sh -c``), how many tasks (``queue`` N, or ``array`` index ranges), and what each task
needs and may do (``requires`` tags, ``walltime``, ``memory``, ``cpus``, ``retries``, ``env``,
``cwd``, ``cleanup``, the queue, reservation or site, ``stdout``/``stderr`` file patterns), or a
sweep over data: ``entries``, one task each. One pydantic model, ``JobRequest``, checks
its shape and ``build_spec`` turns it into the core's ``JobSpec``; anything wrong comes back as a
``Problem`` naming the field, the value and what is allowed, worded the same for every source.

Where each source is read:

- ``request``: the model itself, as the REST API takes it (strict JSON), and
  ``spec_from_mapping`` for text sources (chat messages, job files, the CLI's options), where
  ``"10000"`` is a number; ``values`` reads durations, memory sizes, times and output file patterns, ``errors`` words
  pydantic's errors as one-line Problems;
- ``files``: job files, TOML (a ``[job]`` table) or Kestrel ``.job`` files, and the files of a
  sweep's entries (``each_line``, ``each_json``);
- ``desc``: CSF4-style job descriptions, told apart by content: ``rsl`` reads GT2 RSL, ``gt4``
  reads GT4 XML, ``gram`` holds what both share (the attributes and what they become, the
  refusals of what Tiercel cannot honour, the bound on substitution).

Every module here is pure but ``files``, which reads the file it is given; none reaches the
manager, the network or a clock.
"""
