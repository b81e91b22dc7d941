/* dp_epsilon.h: the accountant on the command line (dp_epsilon.c). */
#ifndef CLIPLAB_DP_EPSILON_H
#define CLIPLAB_DP_EPSILON_H

/* argv: the arguments after --dp-epsilon (want_sigma 0) or --dp-sigma (1);
 * returns the exit status (0, 1 out of reach, 2 usage). */
int dp_epsilon_main(int argc, char **argv, int want_sigma);

#endif
