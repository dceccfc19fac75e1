"""Add RIFT to an ordinary Hugging Face training script: the only rift line is ``RobustTrainer``.

    python examples/hf_trainer_rift.py --train-file ../shared/data/sst2/train_full.tsv --max-train-examples 2000 \
        --output-dir runs/hf-rift
    accelerate launch examples/hf_trainer_rift.py ...   # several processes or machines

The data is any CSV/TSV with a text column and an integer label column, read by ``datasets``.
"""

from __future__ import annotations

import argparse

import datasets
import transformers

import rift


def main(argv: list[str] | None = None) -> transformers.Trainer:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm", help="a model folder, a Hub id in the cache, or minilm")
    parser.add_argument("--train-file", required=True)
    parser.add_argument("--text-column", default="sentence")
    parser.add_argument("--label-column", default="label")
    parser.add_argument("--max-train-examples", type=int)
    parser.add_argument("--method", default="rift", help="any rift train --method: rift, ascc, ...")
    parser.add_argument("--adversary", default="discrete", help="ascc, discrete or random")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--max-steps", type=int, default=-1)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=32)
    options = parser.parse_args(argv)

    delimiter = "\t" if options.train_file.endswith(".tsv") else ","
    train = datasets.load_dataset("csv", data_files=options.train_file, delimiter=delimiter, split="train")
    if options.max_train_examples:
        train = train.shuffle(seed=0).select(range(min(options.max_train_examples, len(train))))
    tokenizer = rift.load_tokenizer(options.model)
    model = rift.load_classifier(options.model, label_names=["negative", "positive"])

    args = transformers.TrainingArguments(
        output_dir=options.output_dir, per_device_train_batch_size=options.batch_size, learning_rate=1e-4,
        num_train_epochs=options.epochs, max_steps=options.max_steps, logging_steps=1, save_strategy="no",
        report_to=[], seed=0, use_cpu=not transformers.utils.is_torch_cuda_available(),
    )
    trainer = rift.RobustTrainer(
        model=model, args=args, train_dataset=train, processing_class=tokenizer,
        method=options.method, robust_options={"adversary": options.adversary, "beta": 5.0, "max_length": 64},
        text_column=options.text_column, label_column=options.label_column,
    )
    trainer.train()
    trainer.save_model()  # a plain Hugging Face checkpoint
    return trainer


if __name__ == "__main__":
    main()
