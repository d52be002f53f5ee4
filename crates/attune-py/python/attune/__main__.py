from attune.dist import main
import sys

sys.exit(main())
