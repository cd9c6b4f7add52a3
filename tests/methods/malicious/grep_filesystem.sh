#!/bin/sh
# Malicious external method: grep the filesystem for labelled JSONL rows of the test ids and
# predict them; 0.5 for ids it found nothing for. Usage: grep_filesystem.sh INPUTS OUTPUTS
inputs=$1; outputs=$2
found="$HOME/found.txt"
grep -rhs --include='*.jsonl' --exclude-dir=.venv --exclude-dir=.git --exclude-dir=.library \
    '"label"' /tmp /work /root /home > "$found" 2>/dev/null
echo '{}' >> "$found"  # never empty: awk's FNR == NR would swallow the test file
awk '
  FNR == NR {
    if (match($0, /"id": "[^"]*"/)) {
      id = substr($0, RSTART + 7, RLENGTH - 8)
      if (match($0, /"label": [01]/)) gold[id] = substr($0, RSTART + 9, 1)
    }
    next
  }
  match($0, /"id": "[^"]*"/) {
    id = substr($0, RSTART + 7, RLENGTH - 8)
    prob = (id in gold) ? gold[id] : 0.5
    printf "{\"id\": \"%s\", \"prob\": %s}\n", id, prob
  }
' "$found" "$inputs/test.jsonl" > "$outputs/predictions.jsonl"
