# Source this on the GPU machine (repo root as cwd): installs the carried wheels (libcst, lark) and puts the
# source tree's packages on the path under their installed names (pyproject maps plugins -> p2t_plugins etc.).
set -e
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
mkdir -p /tmp/p2tpath
ln -sfn "$PWD/p2t_core" /tmp/p2tpath/p2t_core
ln -sfn "$PWD/plugins" /tmp/p2tpath/p2t_plugins
ln -sfn "$PWD/grammar" /tmp/p2tpath/p2t_grammar
ln -sfn "$PWD/model" /tmp/p2tpath/p2t_model
export PYTHONPATH=/tmp/p2tpath:/tmp/site
export PYTHONUNBUFFERED=1
set +e
