"""The send path: Client and AsyncClient, streams, the policy pipeline."""
