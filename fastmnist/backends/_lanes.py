"""Explicit vector loops over a layer's outputs (LLVM IR through Numba intrinsics).

A layer-1 row is a sum over the row's nonzero pixels of ``x_k * W[k, :h]``. Written as a Numba
loop over the h outputs, the running sums live in memory, loaded and stored every few pixels,
and for 784-10-10 (h = 10) LLVM vectorizes the loop in blocks of 32 lanes and runs the 10
outputs as scalar remainder code: about 7 cycles per nonzero pixel. Written with 16 scalar
locals, LLVM's loop vectorizer turns the pixel loop into gathers instead (3x slower). The
intrinsics here say what is meant:

* ``nz_dot``: h <= LANES outputs in one vector held in registers across the pixels, lanes
  >= h masked off (never read or written), four pixels in flight (2.2 cycles per pixel).
* ``nz_dot_wide``: any h, CHUNK outputs in four vectors per pass over the pixels.
* ``nz_outer``: a dW row update in exact pieces of 16, 8, 4, 2, 1 lanes, one loop per width.
* ``rows_dot``: W @ dz for a narrow W, with the ReLU backward.
* ``softmax_grad``: softmax cross-entropy and its gradient for at most LANES classes.
* ``compress_nonzeros``: a uint8 row's nonzero pixels, 64 at a time (AVX-512 VBMI2 only).
* ``shuffle_nonzeros``: the same, 8 at a time by ``pshufb`` and a table (any other CPU here).

The pixel rows may be given by index (a CSR row) or be all rows in order (x_idx None: a
dense layer). They are compiled into the Numba kernels that call them (numba_cpu), so they
take part in Numba's fastmath flags and on-disk cache; note that Numba's cache does not notice
a change to this file alone (clear ``__pycache__`` when editing it). The masked loads and
stores use LLVM's opaque-pointer intrinsic names: Numba >= 0.68 (llvmlite 0.50).
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

#: outputs held in one vector (16 float32 = one AVX-512 register, two AVX2 ones)
LANES = 16

_I32 = ir.IntType(32)
_I64 = ir.IntType(64)


def _splat(builder, value, n=LANES):
    """<n x T> with every lane = value."""
    vt = ir.VectorType(value.type, n)
    v = builder.insert_element(ir.Constant(vt, ir.Undefined), value, _I32(0))
    return builder.shuffle_vector(v, ir.Constant(vt, ir.Undefined),
                                  ir.Constant(ir.VectorType(_I32, n), [0] * n))


def _lane_mask(builder, limit):
    """<LANES x i1>: lane j < limit, for any (possibly negative) i64 limit."""
    lanes = ir.Constant(ir.VectorType(_I64, LANES), list(range(LANES)))
    return builder.icmp_signed("<", lanes, _splat(builder, limit))


def _relu_if(builder, on, v):
    """v, rectified where the i1 `on` holds: v * 0 where not v > 0 (NaN stays NaN)."""
    zero = ir.Constant(v.type, None)
    rectified = builder.select(builder.fcmp_ordered(">", v, zero), v, builder.fmul(v, zero))
    return builder.select(on, rectified, v)


def _suffix(t):
    return "f32" if isinstance(t, ir.FloatType) else "f64"


def _align(t):
    """The alignment of one element, all that the kernels' rows promise."""
    return _I32(4 if isinstance(t, ir.FloatType) else 8)


def _masked_load(builder, ptr, mask, vt):
    fnty = ir.FunctionType(vt, [ptr.type, _I32, mask.type, vt])
    fn = cgutils.get_or_insert_function(
        builder.module, fnty, f"llvm.masked.load.v{LANES}{_suffix(vt.element)}.p0")
    return builder.call(fn, [ptr, _align(vt.element), mask, ir.Constant(vt, None)])


def _masked_store(builder, value, ptr, mask):
    vt = value.type
    fnty = ir.FunctionType(ir.VoidType(), [vt, ptr.type, _I32, mask.type])
    fn = cgutils.get_or_insert_function(
        builder.module, fnty, f"llvm.masked.store.v{LANES}{_suffix(vt.element)}.p0")
    builder.call(fn, [value, ptr, _align(vt.element), mask])


def _load(builder, ptr, off, vt):
    """The vector vt at ptr + off (elements), unaligned."""
    vp = builder.bitcast(builder.gep(ptr, [off]), vt.as_pointer())
    return builder.load(vp, align=_align(vt.element).constant)


def _store(builder, value, ptr, off):
    """Store the vector `value` at ptr + off (elements), unaligned (``_load``'s twin)."""
    vp = builder.bitcast(builder.gep(ptr, [off]), value.type.as_pointer())
    builder.store(value, vp, align=_align(value.type.element).constant)


def _declare(builder, name, ret, *params):
    """The LLVM function (an intrinsic) `name` of type ret(params), declared in the module."""
    return cgutils.get_or_insert_function(builder.module, ir.FunctionType(ret, params), name)


def _index(builder, value, ty):
    """An array element of integer type ty as an i64 (zero- or sign-extended)."""
    if value.type.width == 64:
        return value
    return builder.zext(value, _I64) if not ty.signed else builder.sext(value, _I64)


def _to_float(builder, value, ty, ft):
    """An array element of numba type ty as the LLVM float type ft."""
    if isinstance(ty, types.Integer):
        return builder.uitofp(value, ft) if not ty.signed else builder.sitofp(value, ft)
    if value.type == ft:
        return value
    if isinstance(ft, ir.DoubleType):
        return builder.fpext(value, ft)
    return builder.fptrunc(value, ft)


def _contiguous(*arrays):
    return all(isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" for a in arrays)


def _pixel_args(context, builder, sig, args):
    """The shared arguments of the pixel intrinsics (nz_dot, nz_dot_wide, nz_outer), unpacked
    to LLVM values.

    x_idx may be None (rows 0, 1, ... in order) and scale None (no scaling).
    """
    aty, _, _, ity, vty, _, sty = sig.args[:7]
    oty = sig.args[-1]
    arr = context.make_array(aty)(context, builder, args[0]).data
    wo = context.cast(builder, args[1], sig.args[1], types.int64)
    h = context.cast(builder, args[2], sig.args[2], types.int64)
    ft = context.get_value_type(aty.dtype)
    idx = None if ity == types.none else context.make_array(ity)(context, builder, args[3]).data
    val = context.make_array(vty)(context, builder, args[4]).data
    n = context.cast(builder, args[5], sig.args[5], types.int64)
    scale = None if sty == types.none else context.cast(builder, args[6], sty, aty.dtype)
    other = context.make_array(oty)(context, builder, args[-1]).data
    base = builder.gep(arr, [wo])

    def pixel(q, width=h):
        """(pointer to the matrix row of pixel q, its value x_val[q] * scale)."""
        k = q if idx is None else _index(builder, builder.load(builder.gep(idx, [q])),
                                          ity.dtype)
        v = _to_float(builder, builder.load(builder.gep(val, [q])), vty.dtype, ft)
        return builder.gep(base, [builder.mul(k, width)]), (v if scale is None else
                                                             builder.fmul(v, scale))
    return ft, h, n, pixel, other


def _typed(w, wo, h, x_idx, x_val, n_nz, scale, other):
    ok = (_contiguous(w, x_val, other)
          and isinstance(w.dtype, types.Float) and other.dtype == w.dtype
          and (x_idx == types.none or _contiguous(x_idx)
               and isinstance(x_idx.dtype, types.Integer))
          and isinstance(x_val.dtype, (types.Integer, types.Float))
          and all(isinstance(t, types.Integer) for t in (wo, h, n_nz))
          and (scale == types.none or isinstance(scale, types.Float)))
    return types.void(w, wo, h, x_idx, x_val, n_nz, scale, other) if ok else None


def _dot_sig(w, wo, h, x_idx, x_val, n_nz, scale, b, relu, z):
    if _typed(w, wo, h, x_idx, x_val, n_nz, scale, z) is None or not (
            _contiguous(b) and b.dtype == w.dtype and isinstance(relu, types.Boolean)):
        return None
    return types.void(w, wo, h, x_idx, x_val, n_nz, scale, b, relu, z)


@intrinsic
def nz_dot(typingctx, w, wo, h, x_idx, x_val, n_nz, scale, b, relu, z):
    """z[:h] = b[:h] + sum over q < n_nz of (x_val[q] * scale) * w[wo + x_idx[q] * h:][:h],
    then ReLU (z * 0 where not z > 0, so NaN stays NaN) if relu; h <= LANES.

    w (P,) float; x_idx (>= n_nz,) integer pixel indices (None: 0, 1, ...); x_val (>= n_nz,)
    their values; scale a float (None: 1); b, z (>= h,) of w's dtype. Lanes >= h of w's rows
    are masked off: never read.
    """
    sig = _dot_sig(w, wo, h, x_idx, x_val, n_nz, scale, b, relu, z)

    def codegen(context, builder, sig, args):
        ft, h, n, pixel, out = _pixel_args(context, builder, sig, args)
        vt = ir.VectorType(ft, LANES)
        mask = _lane_mask(builder, h)
        bias = context.make_array(sig.args[7])(context, builder, args[7]).data
        accs = [cgutils.alloca_once_value(builder, ir.Constant(vt, None)) for _ in range(4)]
        builder.store(_masked_load(builder, bias, mask, vt), accs[0])

        def add(q, acc):
            row, v = pixel(q)
            wv = _masked_load(builder, row, mask, vt)
            builder.store(builder.fadd(builder.load(acc), builder.fmul(_splat(builder, v), wv)),
                          acc)

        with cgutils.for_range(builder, builder.udiv(n, _I64(4))) as loop:  # 4 in flight
            q0 = builder.mul(loop.index, _I64(4))
            for u in range(4):
                add(builder.add(q0, _I64(u)), accs[u])
        with cgutils.for_range(builder, n, start=builder.mul(builder.udiv(n, _I64(4)),
                                                             _I64(4))) as loop:
            add(loop.index, accs[0])
        a = [builder.load(acc) for acc in accs]
        total = builder.fadd(builder.fadd(a[0], a[1]), builder.fadd(a[2], a[3]))
        _masked_store(builder, _relu_if(builder, args[8], total), out, mask)
        return context.get_dummy_value()
    return sig, codegen


#: lanes of a wide layer held in registers at once: 4 vectors
CHUNK = 4 * LANES


@intrinsic
def nz_dot_wide(typingctx, w, wo, h, x_idx, x_val, n_nz, scale, b, relu, z):
    """``nz_dot`` for any width h: CHUNK outputs at a time held in four vectors across the
    row's pixels (their four chains in flight), one pass over the pixels per CHUNK.

    The running sums stay in registers: a loop over outputs in Numba keeps them in z and
    loads and stores them for every few pixels.
    """
    sig = _dot_sig(w, wo, h, x_idx, x_val, n_nz, scale, b, relu, z)

    def codegen(context, builder, sig, args):
        ft, h, n, pixel, out = _pixel_args(context, builder, sig, args)
        vt = ir.VectorType(ft, LANES)
        bias = context.make_array(sig.args[7])(context, builder, args[7]).data
        accs = [cgutils.alloca_once_value(builder, ir.Constant(vt, None)) for _ in range(4)]
        chunks = builder.udiv(builder.add(h, _I64(CHUNK - 1)), _I64(CHUNK))
        with cgutils.for_range(builder, chunks) as chunk:
            c0 = builder.mul(chunk.index, _I64(CHUNK))
            offs = [builder.add(c0, _I64(LANES * v)) for v in range(4)]
            masks = [_lane_mask(builder, builder.sub(h, off)) for off in offs]

            def get(ptr, off, mask):  # mask None: a whole vector, an ordinary load
                return (_load(builder, ptr, off, vt) if mask is None else
                        _masked_load(builder, builder.gep(ptr, [off]), mask, vt))

            def run(masks):
                for acc, off, mask in zip(accs, offs, masks):
                    builder.store(get(bias, off, mask), acc)
                with cgutils.for_range(builder, n) as loop:
                    row, v = pixel(loop.index)
                    vv = _splat(builder, v)
                    for acc, off, mask in zip(accs, offs, masks):
                        wv = get(row, off, mask)
                        builder.store(builder.fadd(builder.load(acc), builder.fmul(vv, wv)),
                                      acc)
                for acc, off, mask in zip(accs, offs, masks):
                    total = _relu_if(builder, args[8], builder.load(acc))
                    if mask is None:
                        _store(builder, total, out, off)
                    else:
                        _masked_store(builder, total, builder.gep(out, [off]), mask)

            # a whole chunk (h - c0 >= CHUNK) loads and stores whole vectors: AVX2 has no
            # masked load that folds into the multiply, AVX-512 pays nothing either way
            whole = builder.icmp_signed(">=", builder.sub(h, c0), _I64(CHUNK))
            with builder.if_else(whole) as (then, otherwise):
                with then:
                    run([None] * 4)
                with otherwise:
                    run(masks)
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def nz_outer(typingctx, g, wo, h, x_idx, x_val, n_nz, scale, bo, dz):
    """g[wo + x_idx[q] * h:][:h] += (x_val[q] * scale) * dz[:h] for every q < n_nz, and the
    bias gradient g[bo:bo + h] += dz[:h]; h <= LANES.

    The row is updated in exact pieces of 16, 8, 4, 2 and 1 lanes (the bits of h; one loop
    compiled per h, so the pieces cost no test per pixel) rather than one masked vector: a
    masked 16-lane store to row k overlaps the load of row k + 1 (the next nonzero pixel,
    often) and stalls store-to-load forwarding (18 vs 3.5 cycles per pixel). The rows
    x_idx[:n_nz] must be distinct (a CSR row's are); h outside 1..LANES updates nothing (the
    callers check).
    """
    sig = _typed(g, wo, h, x_idx, x_val, n_nz, scale, dz)
    if sig is None or not isinstance(bo, types.Integer):
        return None
    sig = types.void(g, wo, h, x_idx, x_val, n_nz, scale, bo, dz)

    def codegen(context, builder, sig, args):
        ft, h, n, pixel, dz = _pixel_args(context, builder, sig, args)
        gb = builder.gep(context.make_array(sig.args[0])(context, builder, args[0]).data,
                         [context.cast(builder, args[7], sig.args[7], types.int64)])
        align = _align(ft).constant
        done = builder.append_basic_block("outer.done")
        switch = builder.switch(h, done)
        for width in range(1, LANES + 1):  # one loop per width: its pieces known here
            case = builder.append_basic_block(f"outer.h{width}")
            switch.add_case(_I64(width), case)
            builder.position_at_end(case)
            pieces, off = [], 0  # (lanes, offset in the row, dz[offset:offset + lanes])
            for lanes in (16, 8, 4, 2, 1):
                if width & lanes:
                    vt = ir.VectorType(ft, lanes)
                    pieces.append((lanes, off, _load(builder, dz, _I64(off), vt)))
                    off += lanes
            with cgutils.for_range(builder, n) as loop:
                row, v = pixel(loop.index, _I64(width))
                for lanes, off, d in pieces:
                    vp = builder.bitcast(builder.gep(row, [_I64(off)]), d.type.as_pointer())
                    gv = builder.load(vp, align=align)
                    builder.store(builder.fadd(gv, builder.fmul(_splat(builder, v, lanes), d)),
                                  vp, align=align)
            for _, off, d in pieces:  # the bias row
                vp = builder.bitcast(builder.gep(gb, [_I64(off)]), d.type.as_pointer())
                builder.store(builder.fadd(builder.load(vp, align=align), d), vp, align=align)
            builder.branch(done)
        builder.position_at_end(done)
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def rows_dot(typingctx, w, wo, h, n, dz, a, out):
    """out[k] = w[wo + k * h:][:h] . dz[:h] for k < n (W @ dz of a narrow layer, h <= LANES),
    times 0 where not a[k] > 0 (ReLU backward from the layer's output a; None: no ReLU)."""
    ok = (_contiguous(w, dz, out) and isinstance(w.dtype, types.Float)
          and dz.dtype == w.dtype == out.dtype
          and (a == types.none or _contiguous(a) and a.dtype == w.dtype)
          and all(isinstance(t, types.Integer) for t in (wo, h, n)))
    sig = types.void(w, wo, h, n, dz, a, out) if ok else None

    def codegen(context, builder, sig, args):
        aty = sig.args[0]
        arr = context.make_array(aty)(context, builder, args[0]).data
        wo, h, n = (context.cast(builder, v, t, types.int64)
                    for v, t in zip(args[1:4], sig.args[1:4]))
        dz = context.make_array(sig.args[4])(context, builder, args[4]).data
        act = (None if sig.args[5] == types.none else
               context.make_array(sig.args[5])(context, builder, args[5]).data)
        out = context.make_array(sig.args[6])(context, builder, args[6]).data
        ft = context.get_value_type(aty.dtype)
        vt = ir.VectorType(ft, LANES)
        mask = _lane_mask(builder, h)
        d = _masked_load(builder, dz, mask, vt)
        base = builder.gep(arr, [wo])

        def product(k):
            row = builder.gep(base, [builder.mul(k, h)])
            return builder.fmul(_masked_load(builder, row, mask, vt), d)

        def finish(k, s, width):  # ReLU backward and store of out[k:k + width]
            if act is not None:
                a = _load(builder, act, k, s.type) if width > 1 else \
                    builder.load(builder.gep(act, [k]))
                zero = ir.Constant(s.type, None)
                s = builder.select(builder.fcmp_ordered(">", a, zero), s,
                                   builder.fmul(s, zero))
            if width > 1:
                _store(builder, s, out, k)
            else:
                builder.store(s, builder.gep(out, [k]))

        n4 = builder.udiv(n, _I64(4))
        with cgutils.for_range(builder, n4) as loop:  # four rows, their sums reduced together
            k = builder.mul(loop.index, _I64(4))
            v = [product(builder.add(k, _I64(u))) for u in range(4)]
            finish(k, _hsum4(builder, v), 4)
        with cgutils.for_range(builder, n, start=builder.mul(n4, _I64(4))) as loop:
            finish(loop.index, _hreduce(builder, product(loop.index), _fadd), 1)
        return context.get_dummy_value()
    return sig, codegen


def _hsum4(builder, v):
    """<4 x T> of the lane sums of four <LANES x T> vectors: halving all four together
    (10 shuffles and 6 adds, against 24 and 12 one by one)."""
    def shuf(a, b, idx):
        return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(_I32, len(idx)), idx))

    half = LANES // 2
    lo = list(range(half)) + list(range(LANES, LANES + half))
    hi = list(range(half, LANES)) + list(range(LANES + half, 2 * LANES))
    t01 = builder.fadd(shuf(v[0], v[1], lo), shuf(v[0], v[1], hi))  # 8 partials each
    t23 = builder.fadd(shuf(v[2], v[3], lo), shuf(v[2], v[3], hi))
    q = half // 2
    lo = [g * half + j for g in range(4) for j in range(q)]  # 4 partials of each vector
    hi = [g * half + q + j for g in range(4) for j in range(q)]
    u = builder.fadd(shuf(t01, t23, lo), shuf(t01, t23, hi))
    while q > 1:  # u: 4 groups of q partials
        r = q // 2
        lo = [g * q + j for g in range(4) for j in range(r)]
        hi = [g * q + r + j for g in range(4) for j in range(r)]
        u = builder.fadd(shuf(u, u, lo), shuf(u, u, hi))
        q = r
    return u


def _exp(builder, x):
    """e^x lane by lane for -64 <= x <= 0 (the caller clamps): Cody-Waite reduction
    x = n ln2 + r, |r| <= ln2 / 2, a Taylor polynomial for e^r (degree 7 in float32, 13 in
    float64: truncation below half an ulp), times 2^n built in the exponent bits."""
    vt = x.type
    ft = vt.element
    f32 = isinstance(ft, ir.FloatType)
    it = ir.IntType(32 if f32 else 64)
    ivt = ir.VectorType(it, vt.count)

    def c(v):
        return _splat(builder, ft(v), vt.count)
    fl = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vt, [vt]),
                                        f"llvm.floor.v{vt.count}{_suffix(ft)}")
    n = builder.call(fl, [builder.fadd(builder.fmul(x, c(1.4426950408889634)), c(0.5))])
    # ln 2 split so that n * ln2_hi is exact for |n| < 2^11 (float64) or 2^8 (float32)
    hi, lo = (0.693145751953125, 1.428606765330187e-06) if f32 else \
        (0.6931471803691238, 1.9082149292705877e-10)
    r = builder.fsub(builder.fsub(x, builder.fmul(n, c(hi))), builder.fmul(n, c(lo)))
    degree = 7 if f32 else 13
    fact = 1.0
    for k in range(1, degree + 1):
        fact *= k
    p = c(1.0 / fact)
    for k in range(degree - 1, -1, -1):  # Horner: 1/k! + r * (...)
        fact = fact / (k + 1)
        p = builder.fadd(builder.fmul(p, r), c(1.0 / fact))
    bits, bias = (23, 127) if f32 else (52, 1023)
    two_n = builder.shl(builder.add(builder.fptosi(n, ivt), _splat(builder, it(bias), vt.count)),
                        _splat(builder, it(bits), vt.count))
    return builder.fmul(p, builder.bitcast(two_n, vt))


#: the lowest argument of _exp (and so the lowest flush of softmax_grad): e^-64 ~ 1.6e-28
_EXP_FLOOR = -64.0


def _hreduce(builder, v, op):
    """Reduce a vector's lanes with op(builder, a, b) by halving; the first lane's result."""
    n = v.type.count
    while n > 1:
        n //= 2
        lo = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(_I32, n), list(range(n))))
        hi = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(_I32, n),
                                                      list(range(n, 2 * n))))
        v = op(builder, lo, hi)
    return builder.extract_element(v, _I32(0))


def _fadd(builder, a, b):
    return builder.fadd(a, b)


def _fmax(builder, a, b):
    return builder.select(builder.fcmp_ordered(">", a, b), a, b)


@intrinsic
def softmax_grad(typingctx, z, c, label, inv_n, flush, dz):
    """Softmax cross-entropy of logits z[:c] (c <= LANES) against `label`, and its gradient.

    dz[:c] = (softmax(z) - onehot(label)) * inv_n, where exp(z - max) below e^flush counts as
    0 (no denormals downstream; flush is raised to -64 if lower). Returns (sum of
    exp(z - max), max, argmax), the argmax the first index of the largest logit, as
    ``_argmax``; the loss is log(sum) + max - z[label].
    """
    ok = (_contiguous(z, dz) and isinstance(z.dtype, types.Float) and dz.dtype == z.dtype
          and all(isinstance(t, types.Integer) for t in (c, label))
          and isinstance(inv_n, types.Float) and isinstance(flush, types.Float))
    sig = (types.Tuple([z.dtype, z.dtype, types.int64])(z, c, label, inv_n, flush, dz)
           if ok else None)

    def codegen(context, builder, sig, args):
        zty, cty, lty, nty, fty, _ = sig.args
        ft = context.get_value_type(zty.dtype)
        vt = ir.VectorType(ft, LANES)
        zp = context.make_array(zty)(context, builder, args[0]).data
        dzp = context.make_array(sig.args[5])(context, builder, args[5]).data
        c = context.cast(builder, args[1], cty, types.int64)
        label = context.cast(builder, args[2], lty, types.int64)
        inv_n = context.cast(builder, args[3], nty, zty.dtype)
        flush = context.cast(builder, args[4], fty, zty.dtype)
        mask = _lane_mask(builder, c)
        neg_inf = _splat(builder, ft(float("-inf")))
        zv = _masked_load(builder, zp, mask, vt)
        zv_max = builder.select(mask, zv, neg_inf)
        mx = _hreduce(builder, zv_max, _fmax)
        d = builder.fsub(zv, _splat(builder, mx))
        floor = ft(_EXP_FLOOR)  # 2^n of _exp stays a normal float above it
        flush = builder.select(builder.fcmp_ordered(">", flush, floor), flush, floor)
        fl = _splat(builder, flush)
        keep = builder.fcmp_ordered(">", d, fl)
        e = _exp(builder, builder.select(keep, d, fl))
        is_nan = builder.fcmp_unordered("uno", d, d)  # NaN stays NaN; -inf and the rest: 0
        e = builder.select(keep, e, builder.select(is_nan, d, ir.Constant(vt, None)))
        e = builder.select(mask, e, ir.Constant(vt, None))
        s = _hreduce(builder, e, _fadd)
        p = builder.fmul(e, _splat(builder, builder.fdiv(ft(1.0), s)))
        lanes = ir.Constant(ir.VectorType(_I64, LANES), list(range(LANES)))
        hot = builder.icmp_unsigned("==", lanes, _splat(builder, label))
        g = builder.select(hot, builder.fsub(p, _splat(builder, ft(1.0))), p)
        _masked_store(builder, builder.fmul(g, _splat(builder, inv_n)), dzp, mask)
        top = builder.and_(builder.fcmp_ordered("==", zv, _splat(builder, mx)), mask)
        bits = builder.bitcast(top, ir.IntType(LANES))
        cttz = builder.module.declare_intrinsic("llvm.cttz", [bits.type, ir.IntType(1)])
        best = builder.zext(builder.call(cttz, [bits, ir.IntType(1)(0)]), _I64)
        return context.make_tuple(builder, sig.return_type, [s, mx, best])
    return sig, codegen


def compress_takes(row, cidx, cval):
    """Whether compress_nonzeros takes these Numba types: a uint8 row and values, 16- or
    32-bit indices, all 1-D C arrays."""
    return (_contiguous(row, cidx, cval) and row.dtype == types.uint8
            and cval.dtype == types.uint8 and isinstance(cidx.dtype, types.Integer)
            and cidx.dtype.bitwidth in (16, 32))


@intrinsic
def compress_nonzeros(typingctx, row, cidx, cval):
    """The nonzero pixels of a uint8 row (d,): their indices into cidx, their values into
    cval, in order; returns how many (``kernels.gather_nonzeros``'s contract).

    64 pixels at a time: one compare gives the nonzero mask, AVX-512 VBMI2's ``vpcompressb``
    packs their values into the low bytes of a register and ``vpcompressw``/``vpcompressd``
    their indices, and masked stores write exactly the nonzeros (nothing past them, so the
    buffers need no slack). The compress instructions are used in their register form: the
    form that stores to memory is microcoded on AMD Zen 4 (hundreds of cycles). 10,000 MNIST
    rows in 1.4 against 3.4 ms for the word-skipping scalar loop (AMD EPYC, Zen 5, one
    thread). Only for CPUs with VBMI2 (``_jit.compress_native``); LLVM has no fallback for
    these x86 intrinsics on others."""
    sig = types.int64(row, cidx, cval) if compress_takes(row, cidx, cval) else None

    def codegen(context, builder, sig, args):
        r = context.make_array(sig.args[0])(context, builder, args[0])
        src, d = r.data, builder.extract_value(r.shape, 0)
        idx = context.make_array(sig.args[1])(context, builder, args[1]).data
        val = context.make_array(sig.args[2])(context, builder, args[2]).data
        it = idx.type.pointee
        per = 512 // it.width  # index lanes in one 512-bit vector
        i1, i8 = ir.IntType(1), ir.IntType(8)
        vt, mt = ir.VectorType(i8, 64), ir.VectorType(i1, 64)
        ivt, imt = ir.VectorType(it, per), ir.VectorType(i1, per)
        void = ir.VoidType()
        load8 = _declare(builder, "llvm.masked.load.v64i8.p0", vt, src.type, _I32, mt, vt)
        pack8 = _declare(builder, "llvm.x86.avx512.mask.compress.v64i8", vt, vt, vt, mt)
        store8 = _declare(builder, "llvm.masked.store.v64i8.p0", void, vt, val.type, _I32, mt)
        vi = f"v{per}i{it.width}"
        packi = _declare(builder, f"llvm.x86.avx512.mask.compress.{vi}", ivt, ivt, ivt, imt)
        storei = _declare(builder, f"llvm.masked.store.{vi}.p0", void, ivt, idx.type, _I32, imt)
        pop64 = _declare(builder, "llvm.ctpop.i64", _I64, _I64)
        popi = _declare(builder, f"llvm.ctpop.i{per}", ir.IntType(per), ir.IntType(per))
        zero8, zeroi = ir.Constant(vt, None), ir.Constant(ivt, None)
        lanes64 = ir.Constant(ir.VectorType(_I64, 64), list(range(64)))
        lanes8 = ir.Constant(vt, list(range(64)))
        lanesi = ir.Constant(ivt, list(range(per)))
        n = cgutils.alloca_once_value(builder, _I64(0))
        blocks = builder.udiv(builder.add(d, _I64(63)), _I64(64))
        with cgutils.for_range(builder, blocks) as loop:
            b0 = builder.mul(loop.index, _I64(64))
            inside = builder.icmp_signed("<", lanes64, _splat(builder, builder.sub(d, b0), 64))
            v = builder.call(load8, [builder.gep(src, [b0]), _I32(1), inside, zero8])
            nz = builder.icmp_unsigned("!=", v, zero8)  # (64,) i1: the nonzero pixels
            at = builder.load(n)
            count = builder.call(pop64, [builder.bitcast(nz, _I64)])
            first = builder.icmp_unsigned("<", lanes8, _splat(builder, builder.trunc(count, i8),
                                                              64))
            builder.call(store8, [builder.call(pack8, [v, zero8, nz]),
                                  builder.gep(val, [at]), _I32(1), first])
            off = at
            for p in range(64 // per):  # the block's indices, per lanes at a time
                part = builder.shuffle_vector(nz, ir.Constant(mt, ir.Undefined), ir.Constant(
                    ir.VectorType(_I32, per), list(range(p * per, (p + 1) * per))))
                k = builder.add(lanesi, _splat(builder, builder.trunc(
                    builder.add(b0, _I64(p * per)), it), per))
                c = builder.zext(builder.call(popi, [builder.bitcast(part, ir.IntType(per))]),
                                 _I64)
                firsti = builder.icmp_unsigned("<", lanesi, _splat(builder, builder.trunc(c, it),
                                                                   per))
                builder.call(storei, [builder.call(packi, [k, zeroi, part]),
                                      builder.gep(idx, [off]), _I32(it.width // 8), firsti])
                off = builder.add(off, c)
            builder.store(builder.add(at, count), n)
        return builder.load(n)
    return sig, codegen


def _shuffle_table(builder):
    """The module's [256 x i64] table: for each 8-bit mask, the positions of its set bits
    packed into the low bytes (0x80, which ``pshufb`` reads as "zero", in the rest)."""
    name = "fastmnist.nonzero_positions"
    table = builder.module.globals.get(name)
    if table is None:
        rows = []
        for m in range(256):
            pos = [k for k in range(8) if m >> k & 1] + [0x80] * (8 - bin(m).count("1"))
            rows.append(sum(b << (8 * i) for i, b in enumerate(pos)))
        value = ir.Constant(ir.ArrayType(_I64, 256), [_I64(r) for r in rows])
        table = cgutils.global_constant(builder.module, name, value)
    return table


@intrinsic
def shuffle_nonzeros(typingctx, row, cidx, cval):
    """``compress_nonzeros`` for CPUs without VBMI2 (AVX, AVX2, AVX-512 before Ice Lake): 8
    pixels at a time, a compare gives their nonzero mask, a table gives the positions of its
    set bits, and SSSE3's ``pshufb`` packs the values by them; the positions plus the word's
    offset are the indices. Each word's 8 values and 8 indices are stored whole, so it writes
    up to 7 entries past the nonzeros, never past cidx[:d], cval[:d] (d = len(row)): near
    that end, and for the last d % 8 pixels, one pixel at a time. A zero word (8 dark pixels)
    costs one test. Returns how many nonzeros."""
    sig = types.int64(row, cidx, cval) if compress_takes(row, cidx, cval) else None

    def codegen(context, builder, sig, args):
        r = context.make_array(sig.args[0])(context, builder, args[0])
        src, d = r.data, builder.extract_value(r.shape, 0)
        ia = context.make_array(sig.args[1])(context, builder, args[1])
        va = context.make_array(sig.args[2])(context, builder, args[2])
        idx, val = ia.data, va.data
        cap = builder.extract_value(ia.shape, 0)
        vcap = builder.extract_value(va.shape, 0)
        cap = builder.select(builder.icmp_signed("<", vcap, cap), vcap, cap)
        cap = builder.select(builder.icmp_signed("<", d, cap), d, cap)
        it = idx.type.pointee
        i8 = ir.IntType(8)
        v8, v16 = ir.VectorType(i8, 8), ir.VectorType(i8, 16)
        iv8 = ir.VectorType(it, 8)
        pshufb = _declare(builder, "llvm.x86.ssse3.pshuf.b.128", v16, v16, v16)
        pop = _declare(builder, "llvm.ctpop.i8", i8, i8)
        table = _shuffle_table(builder)
        n = cgutils.alloca_once_value(builder, _I64(0))

        def one(k):  # pixel k, branch on its value
            v = builder.load(builder.gep(src, [k]))
            with builder.if_then(builder.icmp_unsigned("!=", v, i8(0))):
                at = builder.load(n)
                builder.store(v, builder.gep(val, [at]))
                builder.store(builder.trunc(k, it), builder.gep(idx, [at]))
                builder.store(builder.add(at, _I64(1)), n)

        words = builder.udiv(d, _I64(8))
        with cgutils.for_range(builder, words) as loop:
            k0 = builder.mul(loop.index, _I64(8))
            wp = builder.bitcast(builder.gep(src, [k0]), _I64.as_pointer())
            w = builder.load(wp, align=1)
            with builder.if_then(builder.icmp_unsigned("!=", w, _I64(0))):
                at = builder.load(n)
                room = builder.icmp_signed("<=", builder.add(at, _I64(8)), cap)
                with builder.if_else(room) as (fast, slow):
                    with fast:
                        bytes8 = builder.bitcast(w, v8)
                        mask = builder.bitcast(builder.icmp_unsigned(
                            "!=", bytes8, ir.Constant(v8, None)), i8)
                        ctrl = builder.load(builder.gep(table, [_I32(0), builder.zext(mask,
                                                                                     _I64)]))
                        wide = ir.Constant(ir.VectorType(_I64, 2), None)
                        w16 = builder.bitcast(builder.insert_element(wide, w, _I32(0)), v16)
                        c16 = builder.bitcast(builder.insert_element(
                            ir.Constant(ir.VectorType(_I64, 2), [_I64(0), _I64(-1)]), ctrl,
                            _I32(0)), v16)
                        packed = builder.bitcast(builder.call(pshufb, [w16, c16]),
                                                 ir.VectorType(_I64, 2))
                        builder.store(builder.extract_element(packed, _I32(0)), builder.bitcast(
                            builder.gep(val, [at]), _I64.as_pointer()), align=1)
                        pos = builder.bitcast(ctrl, v8)
                        ks = builder.add(builder.zext(pos, iv8),
                                         _splat(builder, builder.trunc(k0, it), 8))
                        builder.store(ks, builder.bitcast(builder.gep(idx, [at]),
                                                          iv8.as_pointer()),
                                      align=it.width // 8)
                        builder.store(builder.add(at, builder.zext(builder.call(pop, [mask]),
                                                                   _I64)), n)
                    with slow:
                        with cgutils.for_range(builder, _I64(8)) as px:
                            one(builder.add(k0, px.index))
        with cgutils.for_range(builder, builder.sub(d, builder.mul(words, _I64(8)))) as px:
            one(builder.add(builder.mul(words, _I64(8)), px.index))
        return builder.load(n)
    return sig, codegen


@intrinsic
def prefetch(typingctx, a, i):
    """Ask for the cache line holding a[i] (1-D C array) ahead of its use; no effect on
    results. The epoch's rows come in shuffled order, so each row's CSR slice and its indptr
    entry are cache misses that a prefetch one or two rows ahead can hide."""
    sig = types.void(a, i) if _contiguous(a) and isinstance(i, types.Integer) else None

    def codegen(context, builder, sig, args):
        ptr = context.make_array(sig.args[0])(context, builder, args[0]).data
        at = builder.gep(ptr, [context.cast(builder, args[1], sig.args[1], types.int64)])
        i8p = ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [i8p, _I32, _I32, _I32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [builder.bitcast(at, i8p), _I32(0), _I32(3), _I32(1)])
        return context.get_dummy_value()
    return sig, codegen


def self_test():
    """Compile and run a small kernel on the intrinsics (cached like the rest) and check it
    against NumPy; raises if LLVM or Numba cannot lower them here. ``numba_cpu`` calls it once
    at import and falls back to the plain loops of ``_plain`` on any exception."""
    import numpy as np

    from . import _jit
    from ._jit import jit

    @jit
    def probe(w, idx, val, b, z, dz):
        prefetch(val, 0)
        nz_dot(w, 0, 10, idx, val, 3, np.float32(1 / 255), b, True, z)
        return softmax_grad(z, 10, 3, np.float32(0.5), -64.0, dz)

    w = np.linspace(-1, 1, 784 * 10, dtype=np.float32)
    idx = np.array([5, 70, 400], dtype=np.uint16)
    val = np.array([255, 128, 1], dtype=np.uint8)
    b = np.linspace(-0.1, 0.1, 10, dtype=np.float32)
    z, dz = np.empty(10, np.float32), np.empty(10, np.float32)
    probe(w, idx, val, b, z, dz)
    W = w.reshape(784, 10)
    want = np.maximum(b + (val / np.float32(255)) @ W[idx], 0)
    if not np.allclose(z, want, rtol=1e-5, atol=1e-6):
        raise RuntimeError("the vector intrinsics gave wrong results on this CPU")
    row = np.zeros(100, np.uint8)
    row[[0, 5, 64, 99]] = [3, 255, 1, 7]

    @jit
    def shuffle(row, cidx, cval):
        return shuffle_nonzeros(row, cidx, cval)

    @jit
    def compress(row, cidx, cval):  # compiled only where the CPU has VBMI2
        return compress_nonzeros(row, cidx, cval)
    for pack in (shuffle, compress) if _jit.COMPRESS else (shuffle,):
        cidx, cval = np.zeros(100, np.uint16), np.zeros(100, np.uint8)
        n = pack(row, cidx, cval)
        if n != 4 or list(cidx[:4]) != [0, 5, 64, 99] or list(cval[:4]) != [3, 255, 1, 7]:
            raise RuntimeError("the vector intrinsics gave wrong results on this CPU")
