"""``make bench``: the figures of DESIGN.md section 9, measured, printed and written to bench/latest.json.

Never asserted on time: the numbers are for reading and for comparing commits.
"""
