/*
 * columns.h
 *		Declarations shared by the modules of protected columns: columns.c
 *		(the encryption, the trigger, reveal() and blind_index()),
 *		disclosures.c (the record of reveals) and protect_worker.c (the
 *		background worker that encrypts existing values).
 */
#ifndef SP_COLUMNS_H
#define SP_COLUMNS_H

#include "postgres.h"

/*
 * Call the internal SQL function secpolicy.<name>(argtypes...) through fmgr,
 * so that no EXECUTE privilege is needed (the internal functions are granted
 * to no one).  *isnull receives whether it returned NULL.  While it runs,
 * statement ends seen by the executor hooks are those of its own queries and
 * do not flush the disclosures.
 */
extern Datum sp_call_internal(const char *name, int nargs, const Oid *argtypes,
							  const Datum *args, const bool *argnulls, bool *isnull);

/* disclosures.c */
extern void sp_disclosures_init(void);
extern uint64 sp_statement_generation(void);
extern void sp_disclosure_add(Oid relid, const char *schema, const char *table,
							  const char *column, bool allowed, Oid role,
							  int64 user_id, int64 session_id, const char *row_key);

/* protect_worker.c */
extern void sp_protect_worker_init(void);

#endif							/* SP_COLUMNS_H */
