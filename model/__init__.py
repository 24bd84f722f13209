"""p2t_model: MinimalLLM, its tokenizer, Muon, data loading and training (see README.md).

Public entry points (imported from their modules, so `import p2t_model` stays free of torch):

    p2t_model.checkpoint.load_model(path, device="cpu", dtype="auto") -> (MinimalLLM, P2TTokenizer)
    MinimalLLM.generate(prompt_ids, max_new_tokens, temperature=0.0, top_p=1.0, stop_id=None, num_samples=1)
    P2TTokenizer.encode_prompt(prompt) / .decode(ids) / .end_id
    p2t_model.train.train(model_cfg, train_cfg, data_dir, out_dir, *, resume=False, eval_fn=None, ...)
    p2t_model.config.preset("50m" | "tiny") -> (ModelConfig, TrainConfig)
    p2t_model.cli.train                    the click command `p2t train`
"""
