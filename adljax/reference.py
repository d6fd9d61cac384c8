def simulate(*a, **k):
    raise NotImplementedError("being written")
