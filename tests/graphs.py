"""Hand-built FX graphs for tests that need shapes torch.export never produces.

    sketch = Sketch()
    x = sketch.input("x")
    enter = sketch.enter()
    y = sketch.op(aten.sin.default, x)
    sketch.exit(enter)
    gm = sketch.finish(y)

Every value carries a fake `meta["val"]`; `line=` gives a node a stack trace naming that line of
a pretend `model.py`, so error messages have a source line to show.
"""

from __future__ import annotations

import torch
import torch.fx
from torch._subclasses.fake_tensor import FakeTensorMode

ENTER = torch.amp.autocast_mode._enter_autocast
EXIT = torch.amp.autocast_mode._exit_autocast
aten = torch.ops.aten


class Sketch:
    def __init__(self, shape=(4, 4)):
        self.graph = torch.fx.Graph()
        with FakeTensorMode():
            self.value = torch.empty(*shape)

    def _node(self, target, args, line=None, kwargs=None, val=True):
        node = self.graph.call_function(target, tuple(args), kwargs or {})
        if val:
            node.meta["val"] = self.value
        if line is not None:
            node.meta["stack_trace"] = (f'  File "model.py", line {line}, in forward\n'
                                        f"    statement_{line}()\n")
        return node

    def input(self, name: str) -> torch.fx.Node:
        node = self.graph.placeholder(name)
        node.meta["val"] = self.value
        return node

    def op(self, target, *args, line=None, **kwargs) -> torch.fx.Node:
        return self._node(target, args, line, kwargs)

    def enter(self, *args, line=None) -> torch.fx.Node:
        return self._node(ENTER, args or ("cpu", torch.bfloat16, True, False), line, val=False)

    def exit(self, enter, line=None) -> torch.fx.Node:
        return self._node(EXIT, (enter,), line, val=False)

    def finish(self, *outputs) -> torch.fx.GraphModule:
        self.graph.output(tuple(outputs))
        return torch.fx.GraphModule(torch.nn.Module(), self.graph)
