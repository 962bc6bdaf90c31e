"""Test helpers shared by the tests and the benchmarks.

registry     a real docker-registry on a free port (Registry, make_htpasswd, free_port)
images       builds layers, images and indexes in memory and pushes them
cli          runs the CLI in-process (run)
storecheck   store invariants (assert_store_verifies, image_ids, blob_files)
hostile      hostile registries and raw servers; run_measured (peak RSS, wall time)
server       the loopback-server base class every scripted server shares
pki          a throwaway CA issuing server/client certificates
tokenserver, hubfixture, hubsearch, faultyserver, flakyrelay, killproxy   scripted servers
ptyrun       runs imgctl on a pseudo-terminal; breakout: path-escape layer cases
"""
