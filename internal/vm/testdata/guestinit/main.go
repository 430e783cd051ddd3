// Command guestinit is a tiny /init for the vm package's boot tests. The
// kernel passes it VMTEST_MODE (and VMTEST_PORT) from the command line as
// environment variables:
//
//   - status: print lines; with VMTEST_PORT, load the virtio-net modules
//     found in /modules (in name order), configure 10.0.2.15/24 and fetch
//     http://10.0.2.100:PORT/ four times (two in a row, two at once); then
//     print the pipeline status 7 and power off.
//   - silent: print a line and power off without a status.
//   - hang: print a line and never finish.
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func main() {
	fmt.Println("guest: hello from the test init")
	switch os.Getenv("VMTEST_MODE") {
	case "status":
		if port := os.Getenv("VMTEST_PORT"); port != "" {
			if err := fetchAll("http://10.0.2.100:" + port); err != nil {
				fmt.Println("guest: network:", err)
			}
		}
		fmt.Print("Execution is over, pipeline status: 7\r\n")
		fmt.Println("It's now safe to turn off your computer")
	case "hang":
		fmt.Println("guest: hanging")
		for {
			time.Sleep(time.Hour)
		}
	}
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		fmt.Println("guest: power off:", err)
	}
}

func fetchAll(url string) error {
	if err := netUp(); err != nil {
		return err
	}
	fetch(url + "/seq1")
	fetch(url + "/seq2")
	var wg sync.WaitGroup
	for _, p := range []string{"/par1", "/par2"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fetch(url + p)
		}()
	}
	wg.Wait()
	return nil
}

func fetch(url string) {
	// No keep-alive: each request is a new guest connection.
	c := http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		fmt.Println("guest: GET:", err)
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		fmt.Println("guest: GET:", err)
		return
	}
	fmt.Printf("guest: got %q\n", body)
}

func netUp() error {
	mods, err := filepath.Glob("/modules/*.ko")
	if err != nil {
		return err
	}
	for _, m := range mods {
		f, err := os.Open(m)
		if err != nil {
			return err
		}
		err = unix.FinitModule(int(f.Fd()), "", 0)
		f.Close()
		if err != nil && err != unix.EEXIST {
			return fmt.Errorf("loading %s: %w", m, err)
		}
	}
	link, err := netlink.LinkByName("eth0")
	for i := 0; err != nil && i < 50; i++ {
		time.Sleep(100 * time.Millisecond)
		link, err = netlink.LinkByName("eth0")
	}
	if err != nil {
		return err
	}
	addr, err := netlink.ParseAddr("10.0.2.15/24")
	if err != nil {
		return err
	}
	if err := netlink.AddrAdd(link, addr); err != nil {
		return err
	}
	return netlink.LinkSetUp(link)
}
