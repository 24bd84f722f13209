# Source this on the GPU machine (repo root as cwd): installs the carried wheels (libcst, lark) and puts the
# source tree's packages on the path under their installed names (pyproject maps plugins -> p2t_plugins etc.).
# It changes no shell options of the script that sources it, and a failed install is a warning: the caller's own
# checks (gpu_bench.sh's preflight, an import) then name what is missing.
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || echo "gpu_env.sh: warning: installing .whl/*.whl failed" >&2
fi
mkdir -p /tmp/p2tpath
ln -sfn "$PWD/p2t_core" /tmp/p2tpath/p2t_core
ln -sfn "$PWD/plugins" /tmp/p2tpath/p2t_plugins
ln -sfn "$PWD/grammar" /tmp/p2tpath/p2t_grammar
ln -sfn "$PWD/model" /tmp/p2tpath/p2t_model
export PYTHONPATH=/tmp/p2tpath:/tmp/site${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
# A fresh inductor cache on the machine, not the user's home (it is cold either way on a fresh machine).
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-/tmp/p2t_inductor_cache}
