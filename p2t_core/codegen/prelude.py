"""Launcher helpers copied into generated modules that use them (modules import nothing of p2t).

Plain Python over torch shapes and strides; they run on the host before a launch.
"""

# The one decorator besides Triton's that generated kernels carry: the cached launcher below
FAST_LAUNCH = "_p2t_fast_launch"

PRELUDE = {
    # triton.cdiv and triton.next_power_of_2 are constexpr-aware functions that cost ~6 us a call on the host:
    # a launcher making 8 such calls spent half its ~100 us of Python in them (profiled on the CPU)
    "_p2t_cdiv": '''
def _p2t_cdiv(a, b):
    return -(-a // b)
''',
    "_p2t_pow2": '''
def _p2t_pow2(n):
    """The smallest power of 2 that is >= n (1 for n <= 1)."""
    return 1 if n <= 1 else 1 << (n - 1).bit_length()
''',
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
def _p2t_rows(t, shape, dims):
    """View t (broadcastable to shape) as (outer, reduced, inner) around dims: (tensor, its 3 strides).

    Runs for every tensor on every call, so the strides are worked out once per layout (t's sizes and strides,
    shape, dims) and kept in _P2T_ROW_STRIDES: a lookup costs 0.5 us, working them out 3.7 us (2-core CPU)."""
    key = (t.shape, t.stride(), tuple(shape), tuple(dims))  # tuples: a hand-written launcher may pass lists
    strides = _P2T_ROW_STRIDES.get(key)
    if strides is not None:
        return t, strides
    if t.numel() == 0:  # nothing is read: any valid pointer will do (an empty tensor may have none)
        return torch.empty(1, dtype=t.dtype, device=t.device), [0, 0, 0]
    rank = len(shape)
    stride = [0] * (rank - t.dim()) + [0 if n == 1 else s for n, s in zip(t.shape, t.stride())]
    if tuple(dims) == tuple(range(dims[0], dims[-1] + 1)):
        groups = [range(0, dims[0]), range(dims[0], dims[-1] + 1), range(dims[-1] + 1, rank)]
    else:  # reduced dims apart: rows are the other dims, in order
        groups = [[d for d in range(rank) if d not in dims], list(dims), []]
    strides = []
    for group in groups:
        kept = [d for d in group if shape[d] != 1]
        for a, b in zip(kept, kept[1:]):
            if stride[a] != stride[b] * shape[b]:
                order = list(groups[0]) + list(groups[1]) + list(groups[2])
                inverse = [order.index(d) for d in range(rank)]
                return _p2t_rows(t.expand(shape).permute(order).contiguous().permute(inverse), shape, dims)
        strides.append(stride[kept[-1]] if kept else 0)
    if len(_P2T_ROW_STRIDES) < 4096:  # bounded: a caller whose shapes keep changing just works them out
        _P2T_ROW_STRIDES[key] = strides
    return t, strides
''',
    "_P2T_ROW_STRIDES": '''
_P2T_ROW_STRIDES = {}
''',
    "_p2t_row_sizes": '''
def _p2t_row_sizes(shape, dims):
    """(outer, reduced, inner) element counts of a row view."""
    outer, reduced, inner = 1, 1, 1
    contiguous = list(dims) == list(range(dims[0], dims[-1] + 1))
    for d in range(len(shape)):
        if d in dims:
            reduced = reduced * shape[d]
        elif contiguous and d > dims[-1]:
            inner = inner * shape[d]
        else:
            outer = outer * shape[d]
    return outer, reduced, inner
''',
    "_p2t_keepdim": '''
def _p2t_keepdim(t, shape, dims):
    """A tensor in the reduced frame (dims removed), viewed with the reduced dims back as size 1."""
    reduced = [s for d, s in enumerate(shape) if d not in dims]
    t = t.expand(reduced)
    for d in dims:
        t = t.unsqueeze(d)
    return t
''',
    "_p2t_empty_rows": '''
def _p2t_empty_rows(shape, dims, dtype, device):
    """An output of the full shape laid out so that its rows collapse (reduced dims innermost if apart)."""
    if list(dims) == list(range(dims[0], dims[-1] + 1)):
        return torch.empty(shape, dtype=dtype, device=device)
    order = [d for d in range(len(shape)) if d not in dims] + list(dims)
    inverse = [order.index(d) for d in range(len(shape))]
    return torch.empty([shape[d] for d in order], dtype=dtype, device=device).permute(inverse)
''',
    "_p2t_mm_strides": '''
def _p2t_mm_strides(t):
    """(batch, rows, cols) strides of a 3-D view; 0 for a broadcast batch."""
    return [0 if t.shape[0] == 1 else t.stride(0), t.stride(1), t.stride(2)]
''',
    "_p2t_mm_operands": '''
def _p2t_mm_operands(a, b):
    """The 3-D operands (batch, m, k) and (batch, k, n) of a large product, with copies of those whose loads
    Triton could not vectorize, and the reduction length: (a, b, k).

    Triton issues 16-byte loads only where it can prove them aligned and their masks constant over 16
    elements: a start on a 16-byte boundary, strides that are multiples of 16 elements (Triton's integer
    specialization), and the contiguous dim's size a multiple of 16 too. A 3001x1999 @ 1999x2777 bf16
    product meets none of this and loads element by element. When an operand fails, both are copied K-major
    with K zero-padded to a multiple of 16 (zeros add nothing to the dot). The copies cost one pass over
    the operands, so launchers ask for them only on a GPU and for products with far more work than that."""
    k = a.shape[2]
    if k % 16 == 0 and _p2t_mm_vectorizes(a, 2, 1) and _p2t_mm_vectorizes(b, 1, 2):
        return a, b, k
    padded = _p2t_cdiv(k, 16) * 16
    return _p2t_k_major(a, padded), _p2t_k_major(b.transpose(1, 2), padded).transpose(1, 2), padded
''',
    # Large products since the twenty-second session; _p2t_mm_operands stays for launchers written against it.
    "_p2t_mm_padded_operands": '''
def _p2t_mm_padded_operands(a, b):
    """_p2t_mm_operands without its transposing copy: (a, b, k, b_padded).

    A copy that transposes is an uncoalesced one (torch's copy kernel reads or writes across the transposed
    stride, ~10x slower than a copy of the same bytes), and _p2t_mm_operands made one of every row-major b.
    Here every copy keeps its operand's layout, K zero-padded to a multiple of 16: a K-major b stays K-major, and a
    row-major b also has N padded to a multiple of 256 (the widest BLOCK_N), so the kernel loads it with no mask
    along N (b_padded: the zero columns only reach output columns that are never stored). The copies go into
    buffers kept from call to call (_p2t_zero_padded)."""
    k = a.shape[2]
    padded = _p2t_cdiv(k, 16) * 16
    if not (k == padded and _p2t_mm_vectorizes(a, 2, 1)):
        a = _p2t_zero_padded(a, a.shape[1], padded, 0)
    if k == padded and _p2t_mm_vectorizes(b, 1, 2):
        return a, b, padded, False
    if b.stride(2) != 1 or b.shape[2] == 1:  # K-major b: a row-major copy of its transpose
        return a, _p2t_zero_padded(b.transpose(1, 2), b.shape[2], padded, 1).transpose(1, 2), padded, False
    return a, _p2t_zero_padded(b, padded, _p2t_cdiv(b.shape[2], 256) * 256, 1), padded, True
''',
    "_P2T_PADDED": '''
_P2T_PADDED = {}
''',
    "_p2t_zero_padded": '''
def _p2t_zero_padded(t, rows, cols, slot):
    """A (batch, rows, cols) row-major copy of t (batch, r, c) with zeros past its own rows and columns; a broadcast
    batch is copied once. The buffer is kept for the next copy of the same memory (t's address, shape and strides)
    on the same stream (slot: which operand), so its zeros are written once and a call costs one copy launch: a
    large product's own kernel takes ~50 us, about the host time of the allocation, fill and views it replaces.
    Launches on one stream run in order, so the next call's copy cannot overtake this call's kernel; calls from
    two threads share a buffer only when they copy the same memory, hence the same values."""
    batch, r, c = t.shape
    src = t[:1] if batch > 1 and t.stride(0) == 0 else t
    stream = torch.cuda.current_stream(t.device).cuda_stream if t.is_cuda else 0
    key = (slot, t.data_ptr(), t.stride(), t.device, stream, t.dtype, batch, src.shape[0], r, c, rows, cols)
    kept = _P2T_PADDED.get(key)
    if kept is None:
        if len(_P2T_PADDED) >= 8:  # a few operands at a time: each buffer is an operand's size
            _P2T_PADDED.clear()
        buf = torch.zeros((src.shape[0], rows, cols), dtype=t.dtype, device=t.device)
        kept = _P2T_PADDED[key] = (buf.expand(batch, rows, cols), buf[:, :r, :c])
    kept[1].copy_(src)
    return kept[0]
''',

    "_p2t_mm_vectorizes": '''
def _p2t_mm_vectorizes(t, k_dim, other_dim):
    """Whether Triton can prove the loads of matmul operand t 16-byte aligned: its start aligned, every stride
    but the unit one a multiple of 16 elements, and the unit stride along K or along a dim of 16n elements."""
    shape = t.shape
    stride = t.stride()
    if t.data_ptr() % 16 != 0:
        return False
    for d in range(3):
        if shape[d] > 1 and stride[d] != 1 and stride[d] % 16 != 0:
            return False
    return stride[k_dim] == 1 or (stride[other_dim] == 1 and shape[other_dim] % 16 == 0)
''',
    "_p2t_k_major": '''
def _p2t_k_major(t, padded):
    """A (batch, rows, k) copy of t with k contiguous and zero-padded to `padded` columns; a broadcast batch
    is copied once."""
    batch, rows, k = t.shape
    src = t[:1] if batch > 1 and t.stride(0) == 0 else t
    buf = torch.empty((src.shape[0], rows, padded), dtype=t.dtype, device=t.device)
    buf[:, :, k:].zero_()
    buf[:, :, :k].copy_(src)
    return buf.expand(batch, rows, padded)
''',
    "_p2t_inplace": '''
def _p2t_inplace(t, shape):
    """The buffer for a parameter the unit writes in place: the parameter itself when a kernel can store into
    it directly, else a contiguous temporary that _p2t_writeback copies in."""
    if list(t.shape) != list(shape):
        raise ValueError("p2t: an in-place output must have the result's shape")
    if t.is_contiguous():
        return t
    return torch.empty(shape, dtype=t.dtype, device=t.device)
''',
    "_p2t_writeback": '''
def _p2t_writeback(t, buffer):
    if buffer.data_ptr() != t.data_ptr():
        t.copy_(buffer)
''',
    "_p2t_row_config": '''
def _p2t_row_config(n_outer, n_r, n_inner, max_single, element_size=4, shared=False):
    """Launch configuration of a row kernel: (BLOCK_R, BLOCK_I, SINGLE, num_warps).

    Rows up to max_single elements stay in registers; column reductions narrow BLOCK_I until the grid
    has a few programs per SM (132 on an H100). Tiles of at most 2 KB get one warp: each thread then keeps
    several 16-byte loads in flight (a 1024-wide bf16 softmax: 0.068 ms with one warp, 0.086 ms with four).
    shared: every row also reads one same input (matvec's vector); its tiles of 8192 elements take 16 warps
    (matvec 8192x8192 fp16 on the H200: 0.0365/0.0368 ms against 0.0379-0.0398 with 8, two sweeps)."""
    block_i = 1
    if n_inner > 1:
        block_i = min(64, _p2t_pow2(n_inner))
        while block_i > 16 and n_outer * _p2t_cdiv(n_inner, block_i) < 4 * 132:
            block_i = block_i // 2
    single = n_r * block_i <= max_single
    if single:
        block_r = max(_p2t_pow2(n_r), 1)
        # short reductions (short rows seen as inner positions, or few rows of many columns): more
        # inner positions a program, up to 4096 elements, while the grid keeps 4 programs a SM
        while block_r * block_i < 4096 and block_i < n_inner and n_outer * _p2t_cdiv(n_inner, 2 * block_i) >= 4 * 132:
            block_i = block_i * 2
        # and no more than 4096 where each reduction is at most 512 bytes: 262144 LayerNorm rows of 256 bf16
        # took 0.0950 ms as 16 rows a program (8 warps), 0.0997 as 64 (16 warps; torch.compile 0.0940, H100 sweep)
        while block_r * block_i > 4096 and block_i > 1 and n_r * element_size <= 512:
            block_i = block_i // 2
    # the grid's second axis counts inner tiles and CUDA allows it 65535 programs (a softmax over 2**22 rows of
    # 64 as 64-row programs needs 65536: "invalid argument" at the launch)
    while _p2t_cdiv(n_inner, block_i) > 65535:
        block_i = block_i * 2
    single = single and n_r * block_i <= max_single
    if not single:
        block_r = max(4096 // block_i, 16)
    tile = block_r * block_i
    warps = 16 if tile >= (8192 if shared else 16384) else (8 if tile >= 4096 else 4)
    if tile * element_size <= 2048:
        warps = 1
    return block_r, block_i, single, warps
''',
    "_p2t_short_rows": '''
def _p2t_short_rows(n_outer, n_r, n_inner, element_size, strides):
    """(n_outer, n_inner, strides) of the row view a row kernel runs on. Rows of at most 512 bytes reduced along
    their last dim become the inner positions of one outer row, so that a program takes several rows (BLOCK_I of
    them) instead of one: one short row a program is a one-warp program that reads a few hundred bytes, too little
    in flight per SM to stream from HBM. strides: each tensor's (outer, reduced, inner) strides, swapped to (inner,
    reduced, outer) with them. Kept as they are when an offset could pass 2**31 (the kernels index inner positions
    in 32 bits)."""
    short = n_inner == 1 and n_outer > 1 and n_r * element_size <= 512 and n_outer * n_r < 2**31
    if not short or any(abs(s[0]) * n_outer >= 2**31 for s in strides):
        return n_outer, n_inner, strides
    return 1, n_outer, [[s[2], s[1], s[0]] for s in strides]
''',
    "_p2t_mm_config": '''
def _p2t_mm_config(m, n, k, element_size, on_gpu):
    """Tile sizes of the matmul template: (BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages)."""
    if not on_gpu:  # the interpreter: small tiles keep it quick
        return max(16, min(32, _p2t_pow2(m))), max(16, min(32, _p2t_pow2(n))), 32, 4, 1
    if element_size > 2:
        return 128, 128, 32, 8, 3
    if m >= 2048 and n >= 2048:
        return 128, 256, 64, 8, 3
    if n <= 64:
        return 128, max(16, _p2t_pow2(n)), 64, 4, 4
    if m <= 64:
        return max(16, _p2t_pow2(m)), 128, 64, 4, 4
    return 128, 128, 64, 8, 4
''',
    # The compiler emits _p2t_split_config now; _p2t_split stays for launchers written against it.
    "_p2t_split": '''
def _p2t_split(n_outer, n_r, n_inner, block_i):
    """How many programs share each row: 1 unless a few long rows would leave most of the GPU idle."""
    programs = n_outer * triton.cdiv(n_inner, block_i)
    if programs >= 264 or n_r < 65536:
        return 1
    return max(1, min(triton.cdiv(n_r, 16384), 1024 // programs))
''',
    "_p2t_split_config": '''
def _p2t_split_config(n_outer, n_r, n_inner, element_size):
    """Launch configuration of a split reduction: (n_split, chunk, BLOCK_R, BLOCK_I, num_warps); n_split 1: none.

    Splits R when the rows alone give fewer than 4 programs per SM (132 on an H100): n_split programs per row,
    each reducing `chunk` elements of R. Tiles of 2048 elements over 8 warps: 8 per thread, at most two 16-byte
    loads per input, which ptxas issues together (with 16 bf16 per thread it spaced them out behind the loop's
    arithmetic: several memory round trips per step). Column reductions keep 512-byte runs of each row per
    program (whole DRAM bursts, not the 64-byte runs of a narrow tile) and get their programs from the split;
    their tiles take 4 warps (col_sum 8192x8192 fp32 on the H200, three sweeps: 0.0771-0.0786 ms against
    0.0823-0.0835 with 8; torch.compile 0.0754-0.0768)."""
    block_i = 1 if n_inner == 1 else min(_p2t_pow2(n_inner), 512 // max(element_size, 1))
    block_r = max(2048 // block_i, 1)
    programs = n_outer * _p2t_cdiv(n_inner, block_i)
    n_split = min(_p2t_cdiv(8 * 132, programs), n_r // (4 * block_r), 16384 // block_i)
    if programs >= 4 * 132 or n_split < 2:
        return 1, n_r, block_r, block_i, 8
    chunk = _p2t_cdiv(_p2t_cdiv(n_r, n_split), block_r) * block_r
    return _p2t_cdiv(n_r, chunk), chunk, block_r, block_i, 8 if block_i == 1 else 4
''',
    "_P2T_SEMAPHORES": '''
_P2T_SEMAPHORES = {}
''',
    "_p2t_semaphores": '''
def _p2t_semaphores(n, device):
    """n int32 counts, zero between launches, for split reductions whose last program per tile combines the
    partial results. One buffer per device and stream: launches on one stream never overlap, and each kernel's
    last programs reset the counts they used; a grown buffer is zeroed on the stream that will use it."""
    stream = torch.cuda.current_stream(device).cuda_stream if device.type == "cuda" else 0
    counts = _P2T_SEMAPHORES.get((device, stream))
    if counts is None or counts.numel() < n:
        counts = torch.zeros(max(n, 1024), dtype=torch.int32, device=device)
        _P2T_SEMAPHORES[(device, stream)] = counts
    return counts
''',
    "_P2T_TUNING": '''
_P2T_TUNING = {}
''',
    "_p2t_mm_configs": '''
def _p2t_mm_configs(m, n, k, batch, dtype, element_size, tune):
    """Launch configurations (BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages) to run for this matmul.

    With tune (a GPU, autotuning on): every candidate, timed by _p2t_toc, until each has enough timed launches
    (over the first few calls); from then on the fastest alone. Otherwise the shape heuristic of _p2t_mm_config."""
    key = (m, n, k, batch, dtype)
    if not tune:
        return [_p2t_mm_config(m, n, k, element_size, False)], key
    if key in _P2T_TUNING and "best" in _P2T_TUNING[key]:
        return [_P2T_TUNING[key]["best"]], key
    if element_size > 2:
        candidates = [(128, 128, 32, 8, 3), (64, 128, 32, 4, 4), (128, 64, 32, 4, 4), (64, 64, 32, 4, 4)]
    elif n <= 64:  # tall-skinny: one column tile; bound by streaming A, so long K steps and many row tiles
        candidates = [(128, 64, 64, 4, 4), (128, 64, 128, 4, 3), (64, 64, 128, 4, 4), (256, 64, 64, 8, 3),
                      (64, 64, 64, 4, 4), (128, 32, 128, 4, 4)]
    else:  # H100 (228 KB of shared memory): the large tiles take 3-4 stages
        candidates = [(128, 256, 64, 8, 3), (128, 256, 64, 8, 4), (256, 128, 64, 8, 3), (128, 128, 64, 8, 4),
                      (128, 128, 128, 8, 3), (128, 128, 64, 4, 4), (128, 64, 64, 4, 4), (64, 128, 64, 4, 4),
                      (64, 64, 64, 4, 4)]
    kept = [c for c in candidates if c[0] <= max(16, 2 * m) and c[1] <= max(16, 2 * n)]
    return kept or [_p2t_mm_config(m, n, k, element_size, True)], key
''',
    "_p2t_tic": '''
def _p2t_tic(key, timed):
    """Start timing one launch of an autotuning round (None when nothing is being tuned).

    A sleep kernel ahead of the start event keeps the GPU busy while the host launches the kernel, so the
    events time the kernel alone, not the ~10-50 us of host launch overhead (as large as a small matmul)."""
    if not timed:
        return None
    torch.cuda._sleep(200000)
    start = torch.cuda.Event(enable_timing=True)
    start.record()
    return start
''',
    "_p2t_toc": '''
def _p2t_toc(key, config, start, n_configs):
    """Record a timed launch; once every configuration of the round has 6 times (3 calls of the unit), keep
    the one with the lowest median."""
    if start is None:
        return
    end = torch.cuda.Event(enable_timing=True)
    end.record()
    end.synchronize()
    times = _P2T_TUNING.setdefault(key, {"times": {}})["times"]
    times.setdefault(config, []).append(start.elapsed_time(end))
    if len(times) == n_configs and all(len(t) >= 6 for t in times.values()):
        _P2T_TUNING[key]["best"] = min(times, key=lambda c: sorted(times[c])[len(times[c]) // 2])
''',
    "_p2t_fast_launch": '''
def _p2t_fast_launch(kernel):
    """Launches of kernel[grid](...) go through the compiled kernel's own launcher once Triton has compiled it
    for such arguments. Triton's JITFunction.run binds and specializes every argument on every call (16-34 us of
    host time a launch on the H200's host, against 6-12 us for the compiled kernel's launcher), and a small
    kernel waits for its host. The key is at least as fine as Triton's specialization (dtypes, 16-byte alignment,
    ints equal to 1 or divisible by 16, 32/64-bit ints, constexpr values, launch options, the device), so a hit
    launches what Triton would. Interpreted kernels, launch hooks and callable grids keep Triton's path."""
    jit = kernel if isinstance(kernel, triton.runtime.JITFunction) else getattr(kernel, "fn", None)
    if not isinstance(jit, triton.runtime.JITFunction):
        return kernel
    triton_run = jit.run
    constexpr = [p.is_constexpr for p in jit.params]
    Tensor = torch.Tensor
    compiled = {}

    def run(*args, grid, warmup, **meta):
        hooks = triton.knobs.runtime
        if warmup or callable(grid) or hooks.launch_enter_hook.calls or hooks.launch_exit_hook.calls:
            return triton_run(*args, grid=grid, warmup=warmup, **meta)
        driver = triton.runtime.driver.active
        device = driver.get_current_device()
        key = [device, tuple(meta.items())]
        append = key.append
        for arg, is_constexpr in zip(args, constexpr):
            kind = type(arg)
            if kind is int and not is_constexpr:  # most arguments: sizes and strides (a bool is not an int here)
                append(arg if arg == 0 or arg == 1 else (arg % 16 == 0, -2**31 <= arg < 2**31, arg >= 2**63))
            elif isinstance(arg, Tensor):
                append((arg.dtype, arg.data_ptr() % 16 == 0))
            elif is_constexpr:
                append(arg)
            elif kind is float:
                append(float)
            else:
                append((kind, arg))
        key = tuple(key)
        hit = compiled.get(key)
        if hit is None:
            launched = triton_run(*args, grid=grid, warmup=False, **meta)
            if launched is not None:
                tail = tuple(meta[p.name] if p.name in meta else p.default for p in jit.params[len(args):])
                compiled[key] = launched, tail
            return launched
        launched, tail = hit
        launched.run(grid[0], grid[1] if len(grid) > 1 else 1, grid[2] if len(grid) > 2 else 1,
                     driver.get_current_stream(device), launched.function, launched.packed_metadata, None, None,
                     None, *args, *tail)
        return launched

    jit.run = run
    return kernel
''',
    "_p2t_dim": '''
def _p2t_dim(t, d):
    """Size of dim d (negative: from the end) of t, or 1 where t has fewer dims (broadcasting)."""
    return t.shape[d] if t.dim() >= -d else 1
''',
}
