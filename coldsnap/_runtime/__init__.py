"""Code that runs inside a container: the lifecycle, the control channel, serving calls;
and the host-side commands a deploy runs (describe, build)."""
