"""Published hyperparameter scaling laws, usable with no sweep at all.

Shipped only where the coefficients, units and definitions can be stated exactly:

* **Step Law** (Li et al., "Predictable Scale: Part I, Step Law - Optimal Hyperparameter Scaling
  Law in Large Language Model Pre-training", StepFun, 2025, arXiv:2503.04715):
  ``eta_opt = 1.79 N^-0.713 D^0.307`` and ``B_opt = 0.58 D^0.571``, with N the model's
  *non-embedding* parameters, D the training tokens and B in tokens. Fitted on about 3,700
  dense and MoE models trained from scratch; the paper's grid spans models of roughly 60M to
  1B non-embedding parameters on up to 100B tokens (its held-out test: 1B parameters, 100B
  tokens), with AdamW and a fixed final learning rate.
* **DeepSeek LLM** (DeepSeek-AI, "DeepSeek LLM: Scaling Open-Source Language Models with
  Longtermism", 2024, arXiv:2401.02954, section 3.1): ``eta_opt = 0.3118 C^-0.1250`` and
  ``B_opt = 0.2920 C^0.3271``, with C the compute in FLOPs and B in tokens. DeepSeek counts
  C = M D with M the non-embedding FLOPs per token (attention included); given only N and D
  we use C = 6 N D, which leaves out attention's share (small at the sequence lengths and
  widths these laws are used for). Fitted on compute budgets from 1e17 to 2e19 FLOPs, with a
  multi-step schedule.

Others users cite (Power Lines, Bergsma et al. 2025, for batch size and weight decay; Porian et
al. 2024) are not shipped: their coefficients could not be checked against the papers here,
and a wrong exponent extrapolated to 1e12 tokens is worse than none. Fit your own instead.
"""

from __future__ import annotations

from scaling.laws import Law, PowerLaw

STEP_LAW = Law(
    name="steplaw",
    learning_rate=PowerLaw(1.79, {"N": -0.713, "D": 0.307}),
    batch_tokens=PowerLaw(0.58, {"D": 0.571}),
    source="Step Law (Li et al. 2025, arXiv:2503.04715); N non-embedding parameters, D tokens, B in tokens",
    fitted_range={"N": (6e7, 1e9), "D": (2e9, 1e11)},
    notes="fitted range approximate, from the paper's experiment grid",
)

DEEPSEEK = Law(
    name="deepseek",
    learning_rate=PowerLaw(0.3118, {"C": -0.1250}),
    batch_tokens=PowerLaw(0.2920, {"C": 0.3271}),
    source="DeepSeek LLM (DeepSeek-AI 2024, arXiv:2401.02954); C in FLOPs (here 6 N D), B in tokens",
    fitted_range={"C": (1e17, 2e19)},
    notes="C = 6 N D stands in for DeepSeek's M D (non-embedding FLOPs per token, attention included); "
    "fitted range as the paper's section 3.1 reports it",
)

PUBLISHED_LAWS: dict[str, Law] = {law.name: law for law in (STEP_LAW, DEEPSEEK)}


def borrowed_batch_note(law: str, calibrated: bool = False) -> str:
    """What a fit whose batch law is a published one says with every recommendation."""
    if calibrated:
        return (f"batch size from the published {law} law's exponents, its coefficient calibrated to this sweep's "
                "best batches: the sweep could not fit a batch law of its own (see the fit's report)")
    return f"batch size from the published {law} law: this sweep could not fit one (see the fit's report)"
