# secpolicy: PGXS build.  `make && sudo make install`; tests: scripts/test
# (or, without root, make installcheck against your own server: see README).
EXTENSION  = secpolicy
# The version is written once, in secpolicy.control.
EXTVERSION := $(shell sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" secpolicy.control)

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
	src/citus.o \
	src/citus_direct.o \
	src/audit.o \
	src/catalog.o \
	src/rollups.o \
	src/ledger.o \
	src/logfilter.o \
	src/columns.o \
	src/disclosures.o \
	src/protect_worker.o \
	src/roles.o \
	src/roles_auth.o \
	src/roles_password.o \
	src/roles_sql.o \
	src/roles_worker.o

# The install script of the current version is assembled from one part per
# concern (src/sql/NN_*.sql).  Released versions are frozen in versions/
# (their install and upgrade scripts, never edited again); the upgrade into
# the current version is built from its hand-written migration in
# src/upgrade/ and the parts (scripts/upgrade-script).
SQL_PARTS   = $(sort $(wildcard src/sql/*.sql))
MIGRATIONS  = $(wildcard src/upgrade/$(EXTENSION)--*--$(EXTVERSION).sql)
DATA_built  = $(EXTENSION)--$(EXTVERSION).sql $(notdir $(MIGRATIONS))
DATA        = $(wildcard versions/$(EXTENSION)--*.sql)

REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
# With EXTRA_REGRESS_OPTS=--temp-instance=DIR, pg_regress starts a server of
# its own with the settings the tests need: the library preloaded and a
# sealing key (made here, readable by its owner only).
REGRESS_OPTS = --temp-config=$(CURDIR)/test/regress-temp.conf

PKG_CONFIG ?= pkg-config
PG_CPPFLAGS = -I$(srcdir)/src -I$(shell $(PG_CONFIG) --includedir) $(shell $(PKG_CONFIG) --cflags libsodium liboath)
SHLIB_LINK  = $(shell $(PKG_CONFIG) --libs libsodium liboath) -lpq

EXTRA_CLEAN = src/blocklist_words.c results regression.diffs regression.out log \
	$(EXTENSION)-*.tar.gz test/regress-temp.conf test/regress.key

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

$(EXTENSION)--$(EXTVERSION).sql: $(SQL_PARTS)
	cat $(SQL_PARTS) > $@

$(EXTENSION)--%--$(EXTVERSION).sql: src/upgrade/$(EXTENSION)--%--$(EXTVERSION).sql $(SQL_PARTS) scripts/upgrade-script
	perl scripts/upgrade-script $* $(EXTVERSION) $< $(SQL_PARTS) > $@.tmp && mv $@.tmp $@

installcheck: test/regress-temp.conf

test/regress.key:
	umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > $@

test/regress-temp.conf: test/regress.key
	printf "shared_preload_libraries = 'secpolicy'\nsecpolicy.key_file = '%s'\n" "$(CURDIR)/test/regress.key" > $@

src/blocklist_words.c: data/common-passwords.txt scripts/gen-blocklist.sh
	sh scripts/gen-blocklist.sh $< > $@

$(OBJS): src/secpolicy.h
src/columns.o src/disclosures.o src/protect_worker.o: src/columns.h
$(filter src/roles%,$(OBJS)): src/roles.h

# The release tarball, from what git holds at HEAD, with META.json (PGXN)
# made from META.json.in and the version; DISTDIR says where to write it.
DISTDIR ?= .
dist:
	sed 's/@VERSION@/$(EXTVERSION)/g' META.json.in > $(DISTDIR)/META.json
	git archive --format=tar.gz --prefix=$(EXTENSION)-$(EXTVERSION)/ \
		--add-file=$(DISTDIR)/META.json -o $(DISTDIR)/$(EXTENSION)-$(EXTVERSION).tar.gz HEAD
	rm $(DISTDIR)/META.json

.PHONY: dist
