//! `errand publish` and `errand events`: publish an event through the
//! server, and look at stored events with their listeners' jobs.

use crate::cli::{EventListArgs, EventsCommand, PublishArgs};
use crate::client_cmd::{connect, print, read_json};
use crate::output;
use anyhow::Result;
use errand_core::NewEvent;
use errand_core::event::EventFilter;
use std::process::ExitCode;

/// `errand publish`
pub async fn publish(args: PublishArgs) -> Result<ExitCode> {
    let event = NewEvent {
        name: args.name,
        data: read_json("data", args.data.as_deref())?,
        unique_key: args.unique_key,
    };
    let published = connect(&args.client)?.publish(&event).await?;
    print(&args.client, &published, |p| {
        let e = &p.event;
        let what = if p.duplicate {
            "already published with this unique key; nothing new stored"
        } else {
            "published"
        };
        let mut out = format!("event {} ({}) {what}\n", e.id, e.name);
        out.push_str(&output::listener_jobs(&p.jobs));
        out
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `errand events …`
pub async fn events(cmd: EventsCommand) -> Result<ExitCode> {
    match cmd {
        EventsCommand::List(args) => list(args).await?,
        EventsCommand::Show(args) => {
            let view = connect(&args.client)?.event(args.id).await?;
            print(&args.client, &view, output::event_details)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn list(args: EventListArgs) -> Result<()> {
    let filter = EventFilter {
        name: args.name,
        before: args.page.cursor,
        limit: args.page.limit,
    };
    let page = connect(&args.client)?.events(&filter).await?;
    print(&args.client, &page, |p| {
        let mut out = output::events_table(&p.events);
        if let Some(cursor) = p.next_cursor {
            out.push_str(&format!("more: --cursor {cursor}\n"));
        }
        out
    })
}
