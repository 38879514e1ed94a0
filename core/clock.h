/*
 * clock.h - the two clocks: wall time for timestamps, monotonic time for
 * durations and deadlines. Both in seconds with fraction, read through
 * the vDSO (no syscall). Can't fail.
 */
#ifndef MT_CLOCK_H
#define MT_CLOCK_H

/** Seconds since the epoch, with fraction. */
double mt_now(void);
/** Monotonic seconds, for durations. */
double mt_mono(void);

#endif
