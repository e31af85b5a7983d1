"""Helpers of the experiment layer's end-to-end tests."""


def killed_at(monkeypatch, module, name: str, call: int) -> None:
    """`module.name` raises KeyboardInterrupt at its `call`-th call: a run killed there."""
    real, calls = getattr(module, name), {"n": 0}

    def dies(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == call:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, dies)
