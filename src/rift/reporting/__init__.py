"""What a study shows: the results tables of a ``rift bench`` grid (Markdown and HTML) and ``rift report``'s single,
self-contained HTML page of tables, plots and adversarial examples."""
