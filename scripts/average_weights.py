"""Average int8 weights directories (a run and its fine-tunes) into a new one: a candidate for `p2t eval`.

    python scripts/average_weights.py OUT_DIR model/weights RUN_A/export [RUN_B/export ...]
"""

import sys

from p2t_model.quantize import INDEX, average_quantized

if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    out = average_quantized(sys.argv[2:], sys.argv[1])
    print(f"wrote {out / INDEX}: the mean of {len(sys.argv) - 2} weights")
