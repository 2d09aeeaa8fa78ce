"""Reptile meta-learning of the embedding network (paper 003, Algorithm 1), adapted to prompt attention.

One :meth:`Reptile.step` is one meta-iteration (Algorithm 1, lines 5–13):

* **Tasks.** A random subset of at most :data:`TASKS_PER_ITERATION` (4) tasks, drawn without
  replacement by the tasks' sampling weights — not all tasks as in the paper, to bound the cost of
  one iteration (≈ 4 × ``inner_steps`` episodic steps). Each chosen task m gets its K-shot set
  S̃_m (``shots`` images), plus S̃_n (entropy) and S̃_p (distillation) of K images of a task n ≠ m and
  a task p ≠ m, each from *another data set* when there is one (else another task, else m itself).
* **Inner loop.** From θ, ``inner_steps`` Adam steps (lr ``p.lr``, weight decay 5·10⁻⁴ as the paper)
  on ``L_BCE + α·L_ER + β·L_D`` (Eq. 1), a fresh Adam per task (its state is never saved).
* **L_BCE** (Eq. 3): our network predicts by attention to a prompt, so the task's supervised loss is
  the episodic attention loss (:func:`.episodic.episode_loss`) on ``p.batch`` episodes whose prompt
  and query both come from S̃_m. The 2-class cross entropy of the attention output is the BCE of its
  foreground probability; the foreground is weighted by the background/foreground pixel ratio of
  the batch's query labels (the paper's w, per batch rather than per mask; clamped to [1/20, 20]).
* **L_ER** (Eq. 4), without task n's labels: the paper applies the base learner being adapted to
  task m, f(·; θ'_m), to task n's images. Our base learner for task m *is* the network attending
  to a task-m prompt, so a prediction on an unlabelled task-n crop is the attention output of its
  pixels over a labelled prompt box from S̃_m: "how much does this pixel look like task m's
  foreground". Its per-pixel two-class Shannon entropy −Σ o·log o (the full binary entropy of
  Grandvalet & Bengio; Eq. 4 prints only the foreground term) is averaged over pixels. This needs
  no extra parameters — no meta-head to train with a second BCE and discard — and it regularises
  exactly the predictor that is trained. One query crop per image of S̃_n, each with its own prompt.
* **L_D** (Eq. 5): the mean squared difference of the bottleneck features
  (``EmbedNet.bottleneck``) over all K×K pairs of a crop of each image of S̃_m and
  of S̃_p (a mean over elements, not the paper's sum, so that β does not scale with the crop). Both
  crops go through one forward pass: BatchNorm then normalises them together, which also keeps the
  loss from being met by shrinking all features to zero.
* **Meta-update** (Eq. 2): θ ← θ + ε·mean_m(θ'_m − θ), ε = ``meta_step``.

BatchNorm (paper §4.1): during meta-training the network runs in train mode, so only batch
statistics are used; the BN scale and bias are not learned (they are left out of the inner Adam and
their gradients are not computed), so they keep their initial values (1 and 0, or those of
``--init``). The running mean and variance, which inference uses, move in each inner loop as usual
and are meta-updated like the weights (θ + ε·mean of the task deltas); the batch counter is taken
from the last task. The strategy holds no state of its own between iterations (the random
generators, saved by the driver, are all a resumed run needs).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..core.augment import STRONG, augment
from ..core.errors import FewcellError
from ..nets.unet import EmbedNet
from .datasets import DataSet
from .episodic import attention_output, crop, episode_batch, episode_loss, task_weights
from .params import PretrainParams

TASKS_PER_ITERATION = 4  #: tasks adapted per meta-iteration (a random subset, to bound the cost)
WEIGHT_DECAY = 5e-4  #: of the inner Adam (paper 003 §4.1)
ONE = np.ones(1)  #: the sampling weight of a single task


def shots(task: DataSet, k: int, rng: np.random.Generator) -> DataSet:
    """K images of a task with their labels (S̃_m of Algorithm 1): the task for one meta-iteration."""
    idx = rng.choice(len(task.images), size=min(k, len(task.images)), replace=False)
    return DataSet(task.name, [task.images[i] for i in idx], [task.labels[i] for i in idx],
                   [task.ids[i] for i in idx])


def common_edge(sets: list[DataSet], size: int, multiple: int) -> int:
    """The largest crop edge ≤ ``size`` that fits every image of ``sets`` and is a multiple of ``multiple``."""
    edge = min(size, *(min(img.shape[1:]) for s in sets for img in s.images))
    return max(multiple, edge // multiple * multiple)


def unlabelled_crops(task: DataSet, size: int, rng: np.random.Generator) -> torch.Tensor:
    """One augmented ``size``² crop of each image of ``task`` (K, 3, size, size); no label is read."""
    out = []
    for img in task.images:
        blank = np.zeros(img.shape[1:], np.uint8)  # crop and augment carry a label map along; this one is empty
        c, b = crop(img, blank, size, rng)
        out.append(augment(c, b, rng, STRONG)[0])
    return torch.from_numpy(np.stack(out))


def other_task(tasks: list[DataSet], m: int, rng: np.random.Generator) -> int:
    """A task n ≠ m of another data set if there is one, else another task of m's set, else m."""
    for same_set_ok in (False, True):
        others = [i for i, t in enumerate(tasks)
                  if i != m and (same_set_ok or t.set_name != tasks[m].set_name)]
        if others:
            return int(others[rng.integers(len(others))])
    return m


def batchnorm_affine(model: nn.Module) -> list[nn.Parameter]:
    """The scale and bias of every BatchNorm layer (not learned in meta-training)."""
    return [q for mod in model.modules() if isinstance(mod, nn.BatchNorm2d)
            for q in (mod.weight, mod.bias) if q is not None]


class Reptile:
    """Paper 003's Reptile meta-learning with entropy regularisation and distillation (see the module doc)."""

    name = "reptile"

    def __init__(self, model: EmbedNet, tasks: list[DataSet], p: PretrainParams, rng: np.random.Generator,
                 gen: torch.Generator):
        if p.inner_steps < 1 or p.shots < 1 or p.meta_step <= 0:
            raise FewcellError("Reptile needs one inner step or more, one shot or more and a positive meta step.")
        self.model, self.tasks, self.p, self.rng, self.gen = model, tasks, p, rng, gen
        self.weights = task_weights(tasks, p)
        frozen = {id(q) for q in batchnorm_affine(model)}
        self.frozen = [q for q in model.parameters() if id(q) in frozen]
        self.learned = [q for q in model.parameters() if id(q) not in frozen]

    # ---- the three objectives -------------------------------------------------------------------
    def supervised(self, m_set: DataSet) -> torch.Tensor:
        """L_BCE: the attention loss on episodes of S̃_m, foreground weighted by the background/foreground ratio."""
        batch = episode_batch([m_set], ONE, self.p, self.rng)
        fg = batch[1].float().mean().item()
        ratio = min(20.0, max(0.05, (1 - fg) / max(fg, 1e-6)))
        return episode_loss(self.model, batch, self.p, self.gen, class_weights=torch.tensor([1.0, ratio]))

    def entropy(self, m_set: DataSet, n_set: DataSet) -> torch.Tensor:
        """L_ER: entropy of the attention output of unlabelled S̃_n crops over prompts from S̃_m."""
        prompts = episode_batch([m_set], ONE, self.p, self.rng, n=len(n_set.images))
        size = common_edge([n_set], prompts[0].shape[-1], self.model.multiple)
        queries = unlabelled_crops(n_set, size, self.rng)
        blank = torch.zeros(queries.shape[0], size, size, dtype=torch.uint8)  # not read: only o is used
        o, _ = attention_output(self.model, [queries, blank, prompts[2], prompts[3]], self.p, self.gen)
        return -(o * torch.log(o.clamp_min(1e-6))).sum(-1).mean()

    def distill(self, m_set: DataSet, p_set: DataSet) -> torch.Tensor:
        """L_D: mean squared difference of bottleneck features over all pairs of S̃_m and S̃_p crops."""
        size = common_edge([m_set, p_set], self.p.crop, self.model.multiple)
        a, b = unlabelled_crops(m_set, size, self.rng), unlabelled_crops(p_set, size, self.rng)
        f = self.model.bottleneck(torch.cat([a, b]))
        fa, fb = f[: len(a)], f[len(a) :]
        return ((fa[:, None] - fb[None]) ** 2).mean()

    # ---- one task's inner loop and the meta-update -----------------------------------------------
    def adapt(self, m: int) -> list[dict[str, float]]:
        """``inner_steps`` Adam steps from the current weights on task m; the losses of each step."""
        p, tasks = self.p, self.tasks
        m_set = shots(tasks[m], p.shots, self.rng)
        n_set = shots(tasks[other_task(tasks, m, self.rng)], p.shots, self.rng)
        p_set = shots(tasks[other_task(tasks, m, self.rng)], p.shots, self.rng)
        opt = torch.optim.Adam(self.learned, lr=p.lr, weight_decay=WEIGHT_DECAY)
        zero = torch.zeros(())
        out = []
        for _ in range(p.inner_steps):
            bce = self.supervised(m_set)
            ent = self.entropy(m_set, n_set) if p.entropy_weight else zero
            dist = self.distill(m_set, p_set) if p.distill_weight else zero
            total = bce + p.entropy_weight * ent + p.distill_weight * dist
            opt.zero_grad()
            total.backward()
            opt.step()
            out.append({"loss": total.item(), "bce": bce.item(), "entropy": ent.item(), "distill": dist.item()})
        return out

    def chosen_tasks(self) -> list[int]:
        k = min(TASKS_PER_ITERATION, int(np.count_nonzero(self.weights)))
        return [int(i) for i in self.rng.choice(len(self.tasks), size=k, replace=False, p=self.weights)]

    def step(self) -> dict[str, float]:
        """One meta-iteration: adapt θ to each chosen task, then θ ← θ + ε·mean(θ'_m − θ)."""
        model = self.model
        model.train()
        theta = {k: v.detach().clone() for k, v in model.state_dict().items()}
        delta = {k: torch.zeros_like(v) for k, v in theta.items() if v.is_floating_point()}
        losses: list[dict[str, float]] = []
        chosen = self.chosen_tasks()
        for q in self.frozen:
            q.requires_grad_(False)
        try:
            for m in chosen:
                model.load_state_dict(theta)
                losses += self.adapt(m)
                for k, v in model.state_dict().items():
                    if k in delta:
                        delta[k] += v.detach() - theta[k]
        finally:
            for q in self.frozen:
                q.requires_grad_(True)
        last = model.state_dict()
        eps = self.p.meta_step / len(chosen)
        model.load_state_dict({k: theta[k] + eps * delta[k] if k in delta else last[k].clone() for k in theta})
        model.zero_grad(set_to_none=True)
        return {k: float(np.mean([d[k] for d in losses])) for k in ("loss", "bce", "entropy", "distill")}

    def state_dict(self) -> dict:
        return {}  # nothing lives between meta-iterations: fresh Adam per task, no extra parameters

    def load_state_dict(self, state: dict) -> None:
        pass
