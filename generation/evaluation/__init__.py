"""Quality evaluation of preference pairs: metrics, detectors, LLM judge, report, review and feedback loops.

Entry points: :func:`generation.evaluation.evaluate.evaluate_file` (``synthgen evaluate``),
:mod:`generation.evaluation.review` (``synthgen review export/import``, ``synthgen feedback import``).
"""
