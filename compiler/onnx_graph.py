"""Small helpers for reading and rewriting an ONNX graph in place (the tidy passes)."""
from onnx import helper, shape_inference


def opset(model):
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _dim(d):
    if d.HasField("dim_value"):
        return d.dim_value
    return d.dim_param or None


def infer(model):
    """(shapes, types): name -> tuple of dims (int, a symbolic name such as 'N', or None
    where unknown), and name -> ONNX element type, for every typed value."""
    g = shape_inference.infer_shapes(model).graph
    shapes, types = {}, {}
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        t = vi.type.tensor_type
        types[vi.name] = t.elem_type
        if t.HasField("shape"):
            shapes[vi.name] = tuple(_dim(d) for d in t.shape.dim)
    for init in g.initializer:
        shapes[init.name] = tuple(init.dims)
        types[init.name] = init.data_type
    return shapes, types


def static_shapes(model):
    return infer(model)[0]


def is_static(dims):
    return dims is not None and all(isinstance(d, int) for d in dims)


def consumers(graph):
    users = {}
    for n in graph.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    return users


def attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def set_nodes(graph, nodes):
    del graph.node[:]
    graph.node.extend(nodes)


def rename_inputs(graph, old, new):
    for n in graph.node:
        n.input[:] = [new if i == old else i for i in n.input]
