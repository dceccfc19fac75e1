"""``agnews``: AG News topic classification. Only its test set is available offline: it is split 80/10/10 with a
fixed seed; the text is the title, a full stop where it has none, and the description."""

from __future__ import annotations

from rift.data.examples import Example, TaskData
from rift.data.readers import read_records, read_text
from rift.data.splits import stratified_split
from rift.data.tasks.base import SPLIT_SEED, SPLITS, Task, label_id, resolve_data_dir, shared_file, text_of


def clean_news(text: str) -> str:
    return " ".join(text.replace("\\", " ").split())  # a backslash marks a line break in AG News


class AGNews(Task):
    name = "agnews"
    description = "the topic of news articles: world, sports, business or sci/tech (Zhang et al. 2015)"
    title = "AG News"
    hub_dataset = "fancyzhx/ag_news"

    def read(self, data_dir, log, scored_split=None) -> TaskData:
        root = resolve_data_dir(data_dir)
        names = [n.strip() for n in read_text(shared_file(root, "agnews", "classes.txt")).split("\n") if n.strip()]
        path = shared_file(root, "agnews", "test.csv")
        ids = {str(i + 1): i for i in range(len(names))}
        examples = []
        for line, rec in read_records(path, (), fieldnames=("class", "title", "description")):
            title = text_of(path, line, rec["title"], "the title", clean_news)
            description = text_of(path, line, rec["description"], "the description", clean_news)
            separator = " " if title.endswith((".", "!", "?")) else ". "
            examples.append(Example(title + separator + description, label_id(path, line, rec["class"], ids)))
        splits = stratified_split(examples, (0.8, 0.1, 0.1), SPLIT_SEED)
        return TaskData("agnews", names, dict(zip(SPLITS, splits)))
