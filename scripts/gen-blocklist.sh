#!/bin/sh
# Turns the blocklist data file (one password per line) into a sorted C array, so that
# blocklist.c can binary-search it with strcmp.  Used by the Makefile; output on stdout.
set -eu
printf '/* Generated from %s by scripts/gen-blocklist.sh: do not edit. */\n' "$1"
printf '#include "postgres.h"\n#include "secpolicy.h"\n\nconst char *const sp_blocklist_words[] = {\n'
LC_ALL=C tr 'A-Z' 'a-z' < "$1" | LC_ALL=C grep -v '^$' | LC_ALL=C sort -u |
	sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/?/\\?/g' -e 's/.*/\t"&",/'
printf '};\n\nconst int	sp_blocklist_count = lengthof(sp_blocklist_words);\n'
