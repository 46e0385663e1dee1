package main

import "syscall"

const syscallECONNRESET = syscall.ECONNRESET
