"""``mr``: Pang and Lee's rt-polarity movie-review sentences, split 80/10/10 with a fixed seed."""

from __future__ import annotations

from rift.data.examples import Example, TaskData
from rift.data.readers import read_text
from rift.data.splits import stratified_split
from rift.data.tasks.base import SPLIT_SEED, SPLITS, Task, resolve_data_dir, shared_file, text_of


class MR(Task):
    name = "mr"
    description = "binary sentiment of movie-review snippets (Pang and Lee 2005)"
    title = "MR (rotten tomatoes)"
    hub_dataset = "cornell-movie-review-data/rotten_tomatoes"

    def read(self, data_dir, log, scored_split=None) -> TaskData:
        # the shared copy is UTF-8 (converted from ISO-8859-1 upstream, checked), so it is read as UTF-8
        root = resolve_data_dir(data_dir)
        examples = []
        for label, suffix in enumerate(("neg", "pos")):
            path = shared_file(root, "mr", f"rt-polarity.{suffix}")
            lines = read_text(path).split("\n")
            if lines[-1] == "":
                lines.pop()  # the final newline ends the last line; it does not start an empty one
            examples += [Example(text_of(path, n, row, "the sentence"), label) for n, row in enumerate(lines, 1)]
        splits = stratified_split(examples, (0.8, 0.1, 0.1), SPLIT_SEED)
        return TaskData("mr", ["negative", "positive"], dict(zip(SPLITS, splits)))
