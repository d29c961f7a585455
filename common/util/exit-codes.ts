/**
 * The exit codes of the three executables (headroom-agent, headroom-coordinator, headroomctl) when they,
 * not a command they run, decide: sysexits.h codes where one fits, so scripts and systemd can tell a
 * mistake in the command line or the configuration from "try again later".
 */

export const EXIT_OK = 0;
/** The work failed (a call to the coordinator, a backup); no sysexits code says more. */
export const EXIT_FAILURE = 1;
/** EX_USAGE: the command line was wrong. */
export const EXIT_USAGE = 64;
/** EX_SOFTWARE: an internal error (a bug), not the user's input. */
export const EXIT_SOFTWARE = 70;
/** EX_TEMPFAIL: denied, skipped, lease lost or revoked: nothing ran to completion, try again later. */
export const EXIT_TEMPFAIL = 75;
/** EX_CONFIG: the configuration file cannot be read or is invalid. */
export const EXIT_CONFIG = 78;
