"""`p2t train`: train MinimalLLM on a data directory built by `p2t data build`.

Registered under the `p2t` group by `from p2t_model.cli import train`; also `python -m p2t_model.cli`.
Under `torchrun --nproc-per-node N` it trains with DistributedDataParallel over N processes.
"""

from __future__ import annotations

import sys

import click

from .config import load_config_file, merge, preset


@click.command("train", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data", "data_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Directory with train.jsonl (and optionally valid_random.jsonl, valid_compositional.jsonl).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Run directory: checkpoints, tokenizer, train_log.jsonl, loss.png.")
@click.option("--preset", "preset_name", default="50m", show_default=True, type=click.Choice(["50m", "tiny"]),
              help="Base configuration (model and training).")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="JSON or TOML file with tables `model` and `train` overriding the preset.")
@click.option("--resume", is_flag=True, help="Continue from the latest checkpoint in --out (exact resume; its "
              "configs are used, only --max-steps and --compile may change).")
@click.option("--max-steps", type=int, help="Override train.max_steps.")
@click.option("--stop-after", type=int, help="Stop (with a checkpoint) after this step; the schedule is unchanged.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--compile/--no-compile", "compile_", default=None, help="torch.compile on CUDA (default: on).")
@click.option("--tokenizer", "tokenizer_file", type=click.Path(exists=True, dir_okay=False),
              help="Use this tokenizer.json (e.g. another run's) instead of training one on --data.")
@click.option("--init-weights", type=click.Path(exists=True, file_okay=False),
              help="Start from these weights (an int8 export or a checkpoint) with a fresh optimizer and schedule.")
@click.option("--verify-units", type=click.IntRange(min=0), default=0, show_default=True,
              help="At each evaluation, also decode this many seeded units of each held-out split greedily and "
              "verify them (pass_valid_random, ... in the log): the pass-rate, not only the loss. 0: off.")
@click.option("--verify-backend", type=click.Choice(["auto", "interpret", "cuda", "aot"]), default="auto",
              show_default=True, help="Verifier backend of --verify-units.")
@click.option("--verify-jobs", type=click.IntRange(min=1), default=4, show_default=True,
              help="Verifications of --verify-units run at a time (each is a worker process).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(data_dir, out_dir, preset_name, config_file, resume, max_steps, stop_after, device, compile_,
          tokenizer_file, init_weights, verify_units, verify_backend, verify_jobs, quiet):
    """Train the LLM engine's model on (canonical Python, Triton) pairs.

    Prints the exact parameter count, then a progress bar with loss, tokens/s and MFU; validation
    losses every eval interval; checkpoints (safetensors + JSON, atomic) into --out.

    \b
    Example:
      p2t train --data data/ --out runs/50m --max-steps 5000
      p2t train --data data/ --out runs/50m --resume
      p2t train --data data/ --out runs/50m --verify-units 32 --verify-backend cuda
      p2t train --data data/ --out /tmp/tiny --preset tiny --device cpu --max-steps 20
      torchrun --standalone --nproc-per-node 2 -m p2t_model.cli --data data/ --out runs/50m

    Under torchrun each process trains on cuda:LOCAL_RANK (nccl; gloo with --device cpu) with
    DistributedDataParallel; train.grad_accum counts the micro-batches of a step over all processes
    (it must be a multiple of their number), so the global batch and the loss do not depend on it.
    A checkpoint resumes on any number of processes. Only rank 0 prints and writes.
    """
    from p2t_core.errors import P2TError

    from .distributed import init_from_env, leaving_group
    from .tokenizer import P2TTokenizer
    from .train import train as run_training

    with leaving_group():
        try:
            ctx = init_from_env(device)
            model_cfg, train_cfg = preset(preset_name)
            if config_file:
                model_cfg, train_cfg = merge(model_cfg, train_cfg, load_config_file(config_file))
            eval_fn = None
            if verify_units:
                from p2t_core.llm.evaluate import training_eval_fn

                eval_fn = training_eval_fn(data_dir, verify_units, backend=verify_backend, jobs=verify_jobs)
            result = run_training(model_cfg, train_cfg, data_dir, out_dir, resume=resume, max_steps=max_steps,
                                  device=ctx.device, stop_after=stop_after, use_compile=compile_, eval_fn=eval_fn,
                                  init_weights=init_weights,
                                  progress=not quiet and ctx.is_main, log=lambda m: click.echo(m, err=True),
                                  rank=ctx.rank, world_size=ctx.world_size,
                                  tokenizer=P2TTokenizer.load(tokenizer_file) if tokenizer_file else None)
        except (P2TError, ValueError, FileNotFoundError) as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(getattr(e, "exit_code", 2))
    if ctx.is_main:
        click.echo(f"done: step {result.step}, checkpoint {result.checkpoint}", err=True)


if __name__ == "__main__":
    train()
