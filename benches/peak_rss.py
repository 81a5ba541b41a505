"""Runs a command and writes the peak resident memory (KiB) of it and its descendants to a file.

Used by the git bench to measure git's receive-pack (with the index-pack it starts):
    python3 peak_rss.py REPORT git-receive-pack ARGS...
"""

import resource
import subprocess
import sys

report, command = sys.argv[1], sys.argv[2:]
code = subprocess.run(command).returncode
with open(report, "w") as f:
    f.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(code)
