"""Code that runs inside a container: the lifecycle, framing and serialization."""
