"""RIFT (Dong et al., NeurIPS 2021): adversarial fine-tuning that keeps the pre-trained features.

    L = CE(f(x), y) + beta * KL(adversarial || clean) + alpha * L_MI

L_MI is a class-conditional InfoNCE bound on I(S; T | Y) between the student's pooled feature on the adversarial
input, S = pool(student(x')), and the frozen pre-trained teacher's pooled feature on the clean input,
T = pool(teacher(x)). Per class c: project S with g_c and T with h_c (Linear(H, 512) -> ReLU -> Linear(512, 256)),
L2-normalise, M = g_c(S) h_c(T)^T / tau over the class-c examples of the batch (rows students, columns teachers),
loss = -mean_k log softmax(M[:, k])_k: for each teacher, its own student against the class's other students, as the
authors' ``nn.LogSoftmax(0)`` computes it. The pooled feature read for S and T is ``--feature``: the pooler output
(the paper's BERT), the first token's hidden state, or the mean of the last hidden states.

Two costs of the authors' code are avoided: the teacher is deterministic and sees only clean inputs, so its
features are computed once per training example, before training; and the one student pass on x' that gives the KL
term's logits also gives S.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from rift.config import option
from rift.models import FEATURES, classify, unwrap
from rift.data.batching import collate, length_sorted_batches, model_inputs
from rift.objectives.adversarial import AdversarialOptions, ASCCObjective


def info_nce(student: torch.Tensor, teacher: torch.Tensor, tau: float) -> torch.Tensor:
    """-mean_k log softmax(M[:, k])_k with M = normalise(student) normalise(teacher)^T / tau: the softmax runs over
    the students (the rows) of each teacher column k, whose positive is student k."""
    similarity = F.normalize(student.float(), dim=-1) @ F.normalize(teacher.float(), dim=-1).T / tau
    return -similarity.log_softmax(0).diagonal().mean()


def projection_head(hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(hidden, 512), nn.ReLU(), nn.Linear(512, 256))


@dataclass
class RIFTOptions(AdversarialOptions):
    alpha: float = option(0.1, "weight of the mutual-information term", at_least=0)
    tau: float = option(0.2, "InfoNCE temperature", above=0)
    feature: str = option("pooler", "the pooled feature the mutual-information term reads, of student and teacher: "
                                    "pooler (what a BERT head reads), cls (the first token's hidden state) or mean "
                                    "(the mean of the last hidden states)", choices=FEATURES)


class RIFTObjective(ASCCObjective):
    name = "rift"
    description = ("RIFT (Dong et al., NeurIPS 2021): adversarial fine-tuning plus alpha times a class-conditional "
                   "InfoNCE bound on the mutual information between the model's features on adversarial inputs and "
                   "a frozen pre-trained copy's features on clean inputs")
    Options = RIFTOptions
    class_balanced = True
    conditional = True  # one pair of heads per class (rift-uncond: one pair for all)
    wants_adversarial_pooled = True  # the MI term reads the student on x' (rift-clean: on x)

    def __init__(self, args):
        super().__init__(args)
        self.feature = args.feature

    def setup(self, context) -> None:
        super().setup(context)
        student = unwrap(context.model)
        hidden = student.config.hidden_size
        heads = context.num_labels if self.conditional else 1
        self.student_heads = nn.ModuleList(projection_head(hidden) for _ in range(heads))
        self.teacher_heads = nn.ModuleList(projection_head(hidden) for _ in range(heads))
        # The teacher is kept out of the module tree (a plain list), so that it is neither trained, nor saved in
        # the resume state, nor synchronised by a distributed wrapper.
        teacher = copy.deepcopy(student).eval().requires_grad_(False)
        self._teacher = [teacher.to(context.device)]
        self._cache = self.pretrained_features(context)

    @property
    def teacher(self) -> nn.Module:
        return self._teacher[0]

    @torch.no_grad()
    def pretrained_features(self, context, batch_size: int = 128) -> torch.Tensor:
        """T of every training example (a CPU tensor, row = example index), computed once before training in fixed
        batches of similar lengths: the same on every process and in a resumed run, whatever the training batches."""
        context.log(f"{self.name}: the pre-trained model's features of the {len(context.train_items)} training examples")
        pad = context.tokenizer.pad_token_id if context.tokenizer.pad_token_id is not None else 0
        features = torch.zeros(len(context.train_items), unwrap(context.model).config.hidden_size)
        for positions in length_sorted_batches(context.train_items, batch_size):
            items = [context.train_items[i] for i in positions]
            inputs = {k: v.to(context.device) for k, v in model_inputs(collate(items, pad)).items()}
            pooled = classify(self.teacher, return_pooled=True, feature=self.feature, **inputs).pooled
            features[[item.index for item in items]] = pooled.float().cpu()
        return features

    def teacher_features(self, batch) -> torch.Tensor:
        """T for the batch's examples, from the features computed before training."""
        return self._cache[batch["index"].cpu()].to(batch["input_ids"].device)

    def mutual_information_loss(self, student_features: torch.Tensor, teacher_features: torch.Tensor,
                                labels: torch.Tensor) -> torch.Tensor:
        if not self.conditional:
            return info_nce(self.student_heads[0](student_features), self.teacher_heads[0](teacher_features), self.args.tau)
        losses = []
        for c, (g, h) in enumerate(zip(self.student_heads, self.teacher_heads)):
            members = labels == c
            if members.any():
                losses.append(info_nce(g(student_features[members]), h(teacher_features[members]), self.args.tau))
        return torch.stack(losses).mean()

    # measured, not optimised: the InfoNCE lower bound on I(S; T | Y) that the loss implies, log n - L (nats, the mean
    # over the classes of the batch), and its ceiling log n, n the examples of a class in the batch
    measured_terms = frozenset({"mi_bound", "mi_ceiling"})

    def extra_terms(self, model, batch, clean, adversarial):
        student = adversarial.pooled if self.wants_adversarial_pooled else clean.pooled
        mi = self.mutual_information_loss(student.float(), self.teacher_features(batch), batch["labels"])
        return {"mi": self.args.alpha * mi}

    def loss(self, model, batch):
        terms = super().loss(model, batch)
        labels = batch["labels"]
        sizes = [int((labels == c).sum()) for c in range(len(self.student_heads))] if self.conditional else [len(labels)]
        ceiling = torch.tensor([math.log(n) for n in sizes if n]).mean()
        terms["mi_ceiling"] = ceiling
        # the weighted term gives the loss back; at alpha 0 the bound is unknown (nan)
        terms["mi_bound"] = ceiling - terms["mi"].detach() / self.args.alpha if self.args.alpha else ceiling * math.nan
        return terms


class UnconditionalRIFTObjective(RIFTObjective):
    """Ablation: one pair of heads for the whole batch, I(S; T) instead of I(S; T | Y)."""

    name = "rift-uncond"
    description = "RIFT with one InfoNCE term for all classes (ablation)"
    conditional = False


class CleanRIFTObjective(RIFTObjective):
    """Ablation: the MI term on the student's clean features instead of its adversarial ones."""

    name = "rift-clean"
    description = "RIFT with the mutual-information term on clean inputs (ablation)"
    wants_adversarial_pooled = False
    wants_clean_pooled = True
