"""Launcher helpers copied into generated modules that use them (modules import nothing of p2t).

Plain Python over torch shapes and strides; they run on the host before a launch.
"""

PRELUDE = {
    "_p2t_size": '''
def _p2t_size(*sizes):
    """The broadcast size of one size variable from all the tensor dims that carry it."""
    size = 1
    for s in sizes:
        if s != 1:
            if size != 1 and s != size:
                raise ValueError("p2t: input sizes do not broadcast")
            size = s
    return size
''',
    "_p2t_check_rank": '''
def _p2t_check_rank(name, t, rank):
    if t.dim() != rank:
        raise ValueError("p2t: " + name + " has a rank the unit was not translated for; retranslate with --shapes")
''',
    "_p2t_layout": '''
def _p2t_layout(shape, tensors):
    """Collapse a broadcast index space to 4 dims: (tensors, sizes, strides of each tensor, contiguous)."""
    shape = list(shape)
    contiguous = all(t.is_contiguous() and list(t.shape) == shape for t in tensors)
    full = [list(t.expand(shape).stride()) for t in tensors]
    sizes, strides = [], [[] for _ in tensors]
    for d in range(len(shape)):
        if shape[d] == 1:
            continue
        if sizes and all(s[-1] == f[d] * shape[d] for s, f in zip(strides, full)):
            sizes[-1] = sizes[-1] * shape[d]
            for s, f in zip(strides, full):
                s[-1] = f[d]
        else:
            sizes.append(shape[d])
            for s, f in zip(strides, full):
                s.append(f[d])
    if len(sizes) > 4:
        return [t.expand(shape).contiguous() for t in tensors], [1, 1, 1, 1], [0] * (4 * len(tensors)), True
    pad = 4 - len(sizes)
    flat = []
    for s in strides:
        flat.extend([0] * pad + s)
    return list(tensors), [1] * pad + sizes, flat, contiguous
''',
    "_p2t_rows": '''
def _p2t_rows(t, shape, start, stop):
    """View t, broadcast to shape, as (outer, reduced, inner) around dims [start, stop): (t, strides)."""
    shape = list(shape)
    e = t.expand(shape)
    groups = [range(0, start), range(start, stop), range(stop, len(shape))]
    strides = []
    for dims in groups:
        kept = [d for d in dims if shape[d] != 1]
        stride = 0
        for a, b in zip(kept, kept[1:]):
            if e.stride(a) != e.stride(b) * shape[b]:
                return _p2t_rows(t.expand(shape).contiguous(), shape, start, stop)
        if kept:
            stride = e.stride(kept[-1])
        strides.append(stride)
    return e, strides
''',
}
