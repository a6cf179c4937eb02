/*
 * verify_baseline.c
 *		The baseline for bench/run login: the median time of a bare libsodium
 *		crypto_pwhash_str_verify of a hash at a given cost, outside PostgreSQL.
 *
 * usage: verify_baseline OPSLIMIT MEMLIMIT ROUNDS
 * Prints the median and the mean in microseconds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

/* Microseconds of a monotonic clock. */
static double
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* qsort comparator for doubles. */
static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return (x > y) - (x < y);
}

int
main(int argc, char **argv)
{
	static const char password[] = "Bench-Password-42";
	char		hash[crypto_pwhash_STRBYTES];
	unsigned long long ops;
	size_t		mem;
	int			rounds;
	double	   *t;
	double		sum = 0;

	if (argc != 4 || sodium_init() < 0)
	{
		fprintf(stderr, "usage: %s OPSLIMIT MEMLIMIT ROUNDS\n", argv[0]);
		return 2;
	}
	ops = strtoull(argv[1], NULL, 10);
	mem = strtoull(argv[2], NULL, 10);
	rounds = atoi(argv[3]);
	if (rounds < 1 || crypto_pwhash_str_alg(hash, password, strlen(password), ops, mem,
											crypto_pwhash_ALG_ARGON2ID13) != 0)
	{
		fprintf(stderr, "could not hash at t=%llu m=%zu\n", ops, mem);
		return 1;
	}

	t = calloc(rounds, sizeof(double));
	for (int i = 0; i < rounds; i++)
	{
		double		start = now_us();

		if (crypto_pwhash_str_verify(hash, password, strlen(password)) != 0)
			return 1;
		t[i] = now_us() - start;
		sum += t[i];
	}
	qsort(t, rounds, sizeof(double), cmp_double);
	printf("%.1f %.1f\n", t[rounds / 2], sum / rounds);
	free(t);
	return 0;
}
