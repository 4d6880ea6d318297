"""Build-only code for tcp_core's cffi extensions (not installed with the runtime package)."""
