/**
 * @file crdt/crdt.h
 * libcrdt umbrella header.
 */
#ifndef CRDT_CRDT_H
#define CRDT_CRDT_H

#include "crdt/error.h"
#include "crdt/value.h"

#endif
