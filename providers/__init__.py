"""Providers: one module per stage type, each doing the real work behind one small protocol.

`base` defines the protocol and the context a provider receives; `registry` maps stage
types to providers (built-ins here, third-party ones through the `mactl.providers`
entry-point group). A provider must not read or write the state file itself: it
returns outputs and calls `ctx.checkpoint`, and the apply walker persists them.
"""
