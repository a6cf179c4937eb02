# secpolicy: PGXS build.  `make && sudo make install`; tests: scripts/test.
EXTENSION  = secpolicy
EXTVERSION = 1.0

MODULE_big = secpolicy
OBJS = \
	src/secpolicy.o \
	src/policy.o \
	src/hash.o \
	src/complexity.o \
	src/normalize.o \
	src/blocklist.o \
	src/blocklist_words.o \
	src/token.o \
	src/trigger.o \
	src/totp.o \
	src/seal.o \
	src/session.o \
	src/ledger.o \
	src/logfilter.o

# The install script is assembled from one part per concern (src/sql/NN_*.sql).
DATA_built = $(EXTENSION)--$(EXTVERSION).sql
SQL_PARTS  = $(sort $(wildcard src/sql/*.sql))

REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))

PKG_CONFIG ?= pkg-config
PG_CPPFLAGS = -I$(srcdir)/src $(shell $(PKG_CONFIG) --cflags libsodium liboath)
SHLIB_LINK  = $(shell $(PKG_CONFIG) --libs libsodium liboath)

EXTRA_CLEAN = src/blocklist_words.c results regression.diffs regression.out

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

$(EXTENSION)--$(EXTVERSION).sql: $(SQL_PARTS)
	cat $(SQL_PARTS) > $@

src/blocklist_words.c: data/common-passwords.txt scripts/gen-blocklist.sh
	sh scripts/gen-blocklist.sh $< > $@

$(OBJS): src/secpolicy.h
