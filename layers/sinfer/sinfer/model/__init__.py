"""Model packages: the store they come from, their manifest, their graph's signature, sessions."""
