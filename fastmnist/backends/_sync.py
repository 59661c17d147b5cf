"""An atomic add on an int64 array entry, for threads of one parallel region that share out
pieces of work as they come free (``columns._bucket_claimed``).

LLVM lowers ``atomicrmw add`` on every target (``lock xadd`` on x86-64, ``ldadd`` or a
load-linked loop on ARM); sequentially consistent, so the work a piece's claimer does is
ordered after the claim.
"""

from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def fetch_add(typingctx, a, i, v):
    """a[i] += v as one atomic operation; returns a[i] from before (a: 1-d int64 array,
    0 <= i < len(a))."""
    if not (isinstance(a, types.Array) and a.ndim == 1 and a.dtype == types.int64
            and isinstance(i, types.Integer) and isinstance(v, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        aryty = sig.args[0]
        arr = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, arr, [args[1]],
                                       wraparound=False)
        value = context.cast(builder, args[2], sig.args[2], types.int64)
        return builder.atomic_rmw("add", ptr, value, "seq_cst")
    return types.int64(a, i, v), codegen
