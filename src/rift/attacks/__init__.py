"""Attacks: word-substitution searches (pwws, genetic, textfooler) and the embedding-space ASCC adversary, all with
one contract: ``attack(examples, indices) -> list[AttackResult]``."""
