from csi_edge.cli import main

main()
