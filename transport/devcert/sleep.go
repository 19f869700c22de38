package devcert

import "time"

// sleepABit paces waitLoad, which waits for another process.
func sleepABit() { time.Sleep(20 * time.Millisecond) }
