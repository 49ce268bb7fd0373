"""Running code in isolation: one IPython kernel per container, in a bubblewrap jail under the container's limits.

launcher     starts a kernel's process in its jail; the check that isolation works here
seccomp      the system-call filter of the jail; cgroups: memory, processes and CPU the Linux kernel enforces
kernel       one kernel, the server's side of it: runs, interrupts, output, caps
jail_kernel  the kernel itself, run as a script in the jail: an IPython shell taking code over a socket pair
warm         warm kernels started ahead of time, so creating a container does not wait for one
containers   live containers: their kernels, locks, expiry, disk quota kept while code runs
"""
