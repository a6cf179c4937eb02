/*
 * citus_direct.c
 *		The session read of a Citus coordinator on its own connections: a
 *		statement prepared once per worker connection and shard, executed
 *		with binary parameters, so that session_touch() through a coordinator
 *		costs about what a single-shard SELECT costs.
 *
 * Citus plans and deparses a single-shard statement at every execution, on
 * the coordinator and again on the worker; for the one statement of the hot
 * path this backend instead keeps, per worker, a connection of its own (as
 * the extension's owner, with citus.node_conninfo, as Citus connects) on
 * which the read of each shard is prepared once.  The routing (which shard
 * holds an account key, which node holds the shard) is read from Citus's
 * catalog and forgotten whenever Citus invalidates it (a shard moved, a node
 * changed).
 *
 * It is used only where it answers exactly what the statement through Citus
 * would: in the first statement of a transaction outside a transaction block
 * (so that nothing this transaction did is invisible to another connection), one placement per
 * shard, no passwords of pg_dist_authinfo and no poolers of pg_dist_poolinfo
 * to honour.  Otherwise, or when a worker cannot be reached, the caller
 * reads through Citus (which raises for a worker that is down).
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "libpq-fe.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#if PG_VERSION_NUM >= 140000
#include "utils/wait_event.h"
#else
#include "pgstat.h"
#endif

#include "secpolicy.h"

/* How long a connection may take to be made, and how long a node that could
 * not be reached is left alone before it is tried again. */
#define CONNECT_TIMEOUT_MS	5000
#define RETRY_AFTER_MS		1000

/* One shard of secpolicy.sessions: its hash range and the node holding it. */
typedef struct Route
{
	int32		min;
	int32		max;
	int64		shardid;
	int			node;			/* index into nodes */
} Route;

/* A worker, and this backend's connection to it. */
typedef struct WorkerNode
{
	char	   *host;
	int			port;
	PGconn	   *conn;
	char		user[NAMEDATALEN];	/* whom conn is connected as */
	char	   *conninfo;		/* citus.node_conninfo it was made with */
	TimestampTz down_until;		/* not tried again before */
	int			failures;		/* connection attempts failed in a row */
	int64	   *prepared;		/* shards whose read is prepared on conn */
	int			nprepared;
} WorkerNode;

/* -1: not read yet; 0: not usable here; 1: routes and nodes are valid. */
static int	route_state = -1;
static Route *routes = NULL;
static int	nroutes = 0;
static WorkerNode *nodes = NULL;
static int	nnodes = 0;
static Oid	sessions_shell = InvalidOid;

static const char *const catalogs[] = {
	"pg_dist_node", "pg_dist_placement", "pg_dist_shard", "pg_dist_partition",
	"pg_dist_authinfo", "pg_dist_poolinfo"
};
static Oid	catalog_oids[lengthof(catalogs)];

/* Invalidations seen: a reload publishes its routes only if none came meanwhile. */
static uint64 route_generation = 0;

/* Forget the routing when Citus changes it; connections stay open. */
static void
direct_relcache_callback(Datum arg, Oid relid)
{
	bool		hit = relid == InvalidOid || relid == sessions_shell;

	for (int i = 0; i < (int) lengthof(catalogs); i++)
		if (relid == catalog_oids[i])
			hit = true;
	if (hit)
	{
		route_state = -1;
		route_generation++;
	}
}

/* secpolicy.citus_direct_reads */
static bool direct_reads = true;

void
sp_citus_direct_init(void)
{
	DefineCustomBoolVariable("secpolicy.citus_direct_reads",
							 gettext_noop("Lets session_touch() on a Citus coordinator read sessions on connections of its own to the workers."),
							 gettext_noop("Each backend then keeps one connection per worker besides those of Citus; off: the read goes through Citus."),
							 &direct_reads, true,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
	CacheRegisterRelcacheCallback(direct_relcache_callback, (Datum) 0);
}

/* The node with this address, added if new; connections are kept across reloads. */
static int
node_index(const char *host, int port)
{
	for (int i = 0; i < nnodes; i++)
		if (nodes[i].port == port && strcmp(nodes[i].host, host) == 0)
			return i;
	nodes = nodes == NULL
		? MemoryContextAllocZero(TopMemoryContext, sizeof(WorkerNode))
		: repalloc(nodes, sizeof(WorkerNode) * (nnodes + 1));
	memset(&nodes[nnodes], 0, sizeof(WorkerNode));
	nodes[nnodes].host = MemoryContextStrdup(TopMemoryContext, host);
	nodes[nnodes].port = port;
	return nnodes++;
}

/* Read the routing of secpolicy.sessions from Citus's catalog (SPI connected). */
static void
load_routes(void)
{
	Oid			nsp = get_namespace_oid("secpolicy", true);
	int			n;
	uint64		generation = route_generation;

	route_state = 0;
	nroutes = 0;
	sessions_shell = OidIsValid(nsp) ? get_relname_relid("sessions", nsp) : InvalidOid;
	for (int i = 0; i < (int) lengthof(catalogs); i++)
		catalog_oids[i] = get_relname_relid(catalogs[i], PG_CATALOG_NAMESPACE);
	if (!OidIsValid(sessions_shell) || !OidIsValid(catalog_oids[0]))
		return;

	/* passwords or poolers Citus would use: leave the connections to Citus
	 * (and so when they cannot be read) */
	if (SPI_execute("SELECT pg_catalog.has_table_privilege('pg_catalog.pg_dist_authinfo', 'SELECT')"
					" AND pg_catalog.has_table_privilege('pg_catalog.pg_dist_poolinfo', 'SELECT')",
					true, 1) != SPI_OK_SELECT || SPI_processed != 1 ||
		strcmp(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1), "t") != 0)
		return;
	if (SPI_execute("SELECT (SELECT count(*) FROM pg_catalog.pg_dist_authinfo)"
					" + (SELECT count(*) FROM pg_catalog.pg_dist_poolinfo)", true, 1) != SPI_OK_SELECT ||
		SPI_processed != 1 ||
		strcmp(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1), "0") != 0)
		return;

	/* every shard, hash-distributed by its bigint user id, on exactly one active primary */
	if (SPI_execute_with_args("SELECT s.shardid, s.shardminvalue::int4, s.shardmaxvalue::int4,"
							  " n.nodename, n.nodeport,"
							  " count(*) OVER (PARTITION BY s.shardid) AS placements"
							  " FROM pg_catalog.pg_dist_shard s"
							  " JOIN pg_catalog.pg_dist_partition d ON d.logicalrelid OPERATOR(pg_catalog.=) s.logicalrelid"
							  " JOIN pg_catalog.pg_dist_placement p ON p.shardid OPERATOR(pg_catalog.=) s.shardid"
							  " JOIN pg_catalog.pg_dist_node n ON n.groupid OPERATOR(pg_catalog.=) p.groupid"
							  "  AND n.isactive AND n.noderole OPERATOR(pg_catalog.=) 'primary'"
							  " WHERE s.logicalrelid OPERATOR(pg_catalog.=) $1 AND d.partmethod OPERATOR(pg_catalog.=) 'h'"
							  " ORDER BY 2",
							  1, (Oid[]) {OIDOID}, (Datum[]) {ObjectIdGetDatum(sessions_shell)},
							  NULL, false, 0) != SPI_OK_SELECT)
		return;
	n = (int) SPI_processed;
	if (n == 0)
		return;
	if (routes != NULL)
		pfree(routes);
	routes = MemoryContextAlloc(TopMemoryContext, sizeof(Route) * n);
	for (int i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull[6];
		Datum		v[6];

		for (int c = 0; c < 6; c++)
			v[c] = SPI_getbinval(tup, desc, c + 1, &isnull[c]);
		for (int c = 0; c < 6; c++)
			if (isnull[c])
				return;
		if (DatumGetInt64(v[5]) != 1)
			return;
		routes[i].shardid = DatumGetInt64(v[0]);
		routes[i].min = DatumGetInt32(v[1]);
		routes[i].max = DatumGetInt32(v[2]);
		routes[i].node = node_index(TextDatumGetCString(v[3]), DatumGetInt32(v[4]));
	}
	nroutes = n;
	/* an invalidation that came while reading: read again next time */
	route_state = generation == route_generation ? 1 : -1;
}

/* The shard of account key `key`: Citus hashes a bigint with hashint8. */
static Route *
route_of(int64 key)
{
	int32		h = DatumGetInt32(DirectFunctionCall1(hashint8, Int64GetDatum(key)));
	int			lo = 0,
				hi = nroutes - 1;

	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;

		if (h < routes[mid].min)
			hi = mid - 1;
		else if (h > routes[mid].max)
			lo = mid + 1;
		else
			return &routes[mid];
	}
	return NULL;
}

static void
drop_connection(WorkerNode *node)
{
	if (node->conn != NULL)
		PQfinish(node->conn);
	node->conn = NULL;
	node->nprepared = 0;
}

/* Wait for the socket of `conn` (interruptibly); false on timeout. */
static bool
wait_socket(PGconn *conn, int events, long timeout_ms)
{
	int			rc = WaitLatchOrSocket(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH | events |
									   (timeout_ms >= 0 ? WL_TIMEOUT : 0),
									   PQsocket(conn), timeout_ms, PG_WAIT_EXTENSION);

	if (rc & WL_LATCH_SET)
	{
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	return !(rc & WL_TIMEOUT);
}

/*
 * Connect to `node` as `user`, as Citus does (citus.node_conninfo), without
 * blocking interrupts; false when it cannot be reached now.
 */
static bool
connect_node(WorkerNode *node, const char *user)
{
	const char *keys[32];
	const char *vals[32];
	int			k = 0;
	char		port[16];
	PQconninfoOption *extra = NULL;
	const char *conninfo = GetConfigOption("citus.node_conninfo", true, false);
	PGconn	   *conn;
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), CONNECT_TIMEOUT_MS);

	if (conninfo != NULL && conninfo[0] != '\0')
	{
		char	   *err = NULL;

		extra = PQconninfoParse(conninfo, &err);
		if (err != NULL)
			PQfreemem(err);
		for (PQconninfoOption *o = extra; o != NULL && o->keyword != NULL && k < 24; o++)
			if (o->val != NULL && o->val[0] != '\0')
			{
				keys[k] = o->keyword;
				vals[k++] = o->val;
			}
	}
	snprintf(port, sizeof(port), "%d", node->port);
	keys[k] = "host";
	vals[k++] = node->host;
	keys[k] = "port";
	vals[k++] = port;
	keys[k] = "dbname";
	vals[k++] = get_database_name(MyDatabaseId);
	keys[k] = "user";
	vals[k++] = user;
	keys[k] = "application_name";
	vals[k++] = "secpolicy session read";
	keys[k] = NULL;
	vals[k] = NULL;

	conn = PQconnectStartParams(keys, vals, false);
	if (extra != NULL)
		PQconninfoFree(extra);
	if (conn == NULL)
		return false;
	node->conn = conn;
	node->nprepared = 0;
	strlcpy(node->user, user, sizeof(node->user));
	if (node->conninfo != NULL)
		pfree(node->conninfo);
	node->conninfo = MemoryContextStrdup(TopMemoryContext, conninfo ? conninfo : "");
	PG_TRY();
	{
		while (PQstatus(conn) != CONNECTION_BAD && st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED)
		{
			long		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);

			if (left <= 0 ||
				!wait_socket(conn, st == PGRES_POLLING_READING ? WL_SOCKET_READABLE : WL_SOCKET_WRITEABLE, left))
				break;
			st = PQconnectPoll(conn);
		}
	}
	PG_CATCH();
	{
		/* interrupted while connecting */
		drop_connection(node);
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (st != PGRES_POLLING_OK || PQstatus(conn) != CONNECTION_OK)
	{
		drop_connection(node);
		return false;
	}
	return true;
}

/* The one result of the query sent on `conn` (NULL when the connection failed). */
static PGresult *
get_result(PGconn *conn)
{
	PGresult   *res = NULL,
			   *next;

	while (PQisBusy(conn))
	{
		(void) wait_socket(conn, WL_SOCKET_READABLE, -1);
		if (!PQconsumeInput(conn))
			return NULL;
	}
	while ((next = PQgetResult(conn)) != NULL)
	{
		if (res != NULL)
			PQclear(res);
		res = next;
	}
	return res;
}

static int64
be64(const char *p)
{
	uint64		v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | (unsigned char) p[i];
	return (int64) v;
}

/*
 * Run the read on `node` (connected): -1 failed, 0 no session, 1 found.
 * The statement is prepared on this connection at its first use for the shard.
 */
static int
read_on(WorkerNode *node, Route *route, int64 key, bytea *digest, SpSessionRead *out)
{
	PGconn	   *conn = node->conn;
	char		name[64];
	bool		prepared = false;
	char		keybuf[8];
	const char *values[2];
	int			lengths[2] = {8, (int) VARSIZE_ANY_EXHDR(digest)};
	int			formats[2] = {1, 1};
	PGresult   *res;
	int			status = -1;

	snprintf(name, sizeof(name), "secpolicy_session_read_" INT64_FORMAT, route->shardid);
	for (int i = 0; i < node->nprepared; i++)
		if (node->prepared[i] == route->shardid)
			prepared = true;
	if (!prepared)
	{
		char		sql[512];

		snprintf(sql, sizeof(sql),
				 "SELECT s.id, s.created_at, s.last_seen_at, s.ended_at IS NOT NULL, s.end_reason"
				 " FROM secpolicy.sessions_" INT64_FORMAT " s"
				 " WHERE s.user_id OPERATOR(pg_catalog.=) $1::pg_catalog.int8"
				 " AND s.token_digest OPERATOR(pg_catalog.=) $2::pg_catalog.bytea",
				 route->shardid);
		if (!PQsendPrepare(conn, name, sql, 2, NULL))
			return -1;
		res = get_result(conn);
		if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK)
		{
			if (res != NULL)
				PQclear(res);
			return -1;
		}
		PQclear(res);
		node->prepared = node->prepared == NULL
			? MemoryContextAlloc(TopMemoryContext, sizeof(int64) * (node->nprepared + 1))
			: repalloc(node->prepared, sizeof(int64) * (node->nprepared + 1));
		node->prepared[node->nprepared++] = route->shardid;
	}

	for (int i = 0; i < 8; i++)
		keybuf[i] = (char) ((uint64) key >> (56 - 8 * i));
	values[0] = keybuf;
	values[1] = VARDATA_ANY(digest);
	if (!PQsendQueryPrepared(conn, name, 2, values, lengths, formats, 1))
		return -1;
	res = get_result(conn);
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != 5)
		status = -1;
	else if (PQntuples(res) == 0)
		status = 0;
	else if (PQgetlength(res, 0, 0) == 8 && PQgetlength(res, 0, 1) == 8 &&
			 PQgetlength(res, 0, 2) == 8 && PQgetlength(res, 0, 3) == 1)
	{
		out->user_id = key;
		out->id = be64(PQgetvalue(res, 0, 0));
		out->created_at = (TimestampTz) be64(PQgetvalue(res, 0, 1));
		out->last_seen_at = (TimestampTz) be64(PQgetvalue(res, 0, 2));
		out->ended = PQgetvalue(res, 0, 3)[0] != 0;
		out->end_reason = PQgetisnull(res, 0, 4) ? NULL
			: pnstrdup(PQgetvalue(res, 0, 4), PQgetlength(res, 0, 4));
		status = 1;
	}
	if (res != NULL)
		PQclear(res);
	return status;
}

/*
 * Read the session of account key `key` with token digest `digest` on this
 * backend's connection to its worker, as `user` (the extension's owner):
 * 1 found (out filled but for the policy), 0 no such session, -1 not
 * answered here (the caller reads through Citus).
 */
int
sp_citus_direct_read(int64 key, bytea *digest, const char *user, SpSessionRead *out)
{
	Route	   *route;
	WorkerNode	   *node;
	int			status = -1;

	if (!direct_reads)
	{
		/* turned off: close what this backend holds */
		for (int i = 0; i < nnodes; i++)
			drop_connection(&nodes[i]);
		return -1;
	}
	/* only for the first statement of a transaction of its own: nothing it
	 * did before (a session login() created, one logout() ended) is unseen */
	if (IsTransactionBlock() || sp_xact_statements != 1 || key == 0)
		return -1;
	/* as Citus's planner would: take in the invalidations sent so far */
	if (OidIsValid(sessions_shell))
		LockRelationOid(sessions_shell, AccessShareLock);
	if (route_state < 0)
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			return -1;
		PG_TRY();
		{
			load_routes();
		}
		PG_CATCH();
		{
			route_state = -1;
			PG_RE_THROW();
		}
		PG_END_TRY();
		SPI_finish();
	}
	if (route_state != 1 || (route = route_of(key)) == NULL)
		return -1;
	node = &nodes[route->node];
	{
		const char *conninfo = GetConfigOption("citus.node_conninfo", true, false);

		if (node->conn == NULL || PQstatus(node->conn) != CONNECTION_OK ||
			strcmp(node->user, user) != 0 ||
			strcmp(node->conninfo ? node->conninfo : "", conninfo ? conninfo : "") != 0)
		{
			drop_connection(node);
			if (GetCurrentTimestamp() < node->down_until)
				return -1;
			if (!connect_node(node, user))
			{
				/* 1 s, doubling up to a minute: a refused login is not retried in a loop */
				node->failures = Min(node->failures + 1, 7);
				node->down_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
															   Min(RETRY_AFTER_MS << (node->failures - 1), 60000));
				return -1;
			}
			node->failures = 0;
		}
	}
	PG_TRY();
	{
		status = read_on(node, route, key, digest, out);
	}
	PG_CATCH();
	{
		/* interrupted (a cancel, a timeout) with a statement in flight */
		drop_connection(node);
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (status < 0)
		drop_connection(node);
	return status;
}
