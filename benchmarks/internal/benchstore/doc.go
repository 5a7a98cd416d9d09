// Package benchstore opens the stores a bench server runs on: the in-memory
// stores, or the Redis stores on a fresh key prefix so that runs sharing one
// redis-server never see each other's data.
package benchstore
