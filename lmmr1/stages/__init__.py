"""LMM-R1's two stages as commands: `python -m lmmr1.stages.fre`, `python -m lmmr1.stages.mgt`, and
`python -m lmmr1.stages.run_all` for a list of stage configs. Shared machinery in `common`, reports in `report`.
"""
